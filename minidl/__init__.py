"""minidl: a from-scratch deep-learning framework for learning how it works inside."""
