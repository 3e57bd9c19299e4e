"""A correct solution of lessons/exercises/11_gram.py (for the tests)."""


def gram_matrix(x):
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return (f @ f.transpose(1, 2)) * (1.0 / (c * h * w))


def gram_loss(feature, target_gram):
    d = gram_matrix(feature) - target_gram
    return (d * d).mean()
