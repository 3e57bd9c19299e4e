"""`minidl bench`: one row measured in this process, and the FLOP count."""

import numpy as np

from minidl import bench
from minidl.models import vgg16


def test_conv_flops_of_vgg16_at_224px():
    # The well-known 15.5 GMAC of VGG16's convolutions at 224 px, as 2 FLOP per MAC.
    assert np.isclose(bench._conv_gflop(vgg16(), 224), 30.69, atol=0.01)


def test_one_row_reports_consistent_numbers():
    row = bench.bench_vgg16(32, backward=True)
    assert row["pass"] == "forward+backward"
    assert row["gflop"] == 2 * bench._conv_gflop(vgg16(), 32)
    assert row["seconds"] > 0 and row["sgemm"] > 0
    # every op kind was timed, and the parts add up to the whole pass
    assert row["parts"]["conv"] > 0 and row["parts"]["pool"] > 0
    assert np.isclose(sum(row["parts"].values()), row["seconds"])


def test_timing_leaves_the_backend_as_it_was():
    from minidl.backends import get_backend

    backend = get_backend("cpu")
    bench.bench_vgg16(32, backward=False)
    assert not {"conv2d", "max_pool2d"} & set(vars(backend))
