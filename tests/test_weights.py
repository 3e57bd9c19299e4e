"""Tests for minidl.weights: readers, writer, errors, find_weights, fetch, CLI.

Keras 3 names and order: test_weights_keras3.py; hostile files: test_weights_untrusted.py.

Every file is tiny and written here, in tmp_path; the download tests talk to a
local HTTP server on 127.0.0.1, never to the network.
"""

import hashlib
import http.server
import threading
from dataclasses import dataclass

import h5py
import numpy as np
import pytest

from minidl import weights
from minidl.cli import main
from minidl.weights import (
    DownloadError,
    WeightsError,
    check_state_dict,
    download,
    fetch,
    find_weights,
    load_weights,
    read_weights,
    save_state_dict,
)

RNG = np.random.default_rng(0)


def conv(kh, kw, c_in, c_out):
    """A Keras-style conv layer: kernel (kh, kw, in, out) and bias (out,)."""
    kernel = RNG.standard_normal((kh, kw, c_in, c_out)).astype(np.float32)
    bias = RNG.standard_normal(c_out).astype(np.float32)
    return [kernel, bias]


def dense(n_in, n_out):
    """A Keras-style dense layer: kernel (in, out) and bias (out,)."""
    return [RNG.standard_normal((n_in, n_out)).astype(np.float32), np.zeros(n_out, np.float32)]


@dataclass(frozen=True)
class Declared:
    """A dataset declared with a shape and a fill value and no data written: HDF5
    stores no values for it, so the file stays tiny whatever the shape claims."""

    shape: tuple
    fill: float = 0.0
    dtype: str = "float32"
    compression: str | None = None

    @property
    def ndim(self):
        return len(self.shape)


def create(group, name, array):
    """``group[name] = array``, where ``array`` may also be a :class:`Declared`."""
    if isinstance(array, Declared):
        chunks = array.shape[:-1] + (min(array.shape[-1], 64),) if array.compression else None
        return group.create_dataset(name, shape=array.shape, dtype=array.dtype,
                                    fillvalue=array.fill, compression=array.compression,
                                    chunks=chunks)  # fmt: skip
    return group.create_dataset(name, data=array)


# A tiny VGG-like network: layer name -> weights ([] for layers without any).
NOTOP = {
    "input_1": [],
    "block1_conv1": conv(3, 3, 3, 4),
    "block1_conv2": conv(3, 3, 4, 5),
    "block1_pool": [],
}
WITH_TOP = {**NOTOP, "flatten": [], "fc1": dense(20, 8), "fc2": dense(8, 8),
            "predictions": dense(8, 3)}  # fmt: skip


def write_keras2(path, layers, nested=False):
    """Write ``layers`` exactly as Keras 2 did in vgg16_weights_tf_..._notop.h5.

    Attribute types copied from that file: ``layer_names`` and ``weight_names``
    are NumPy arrays of bytes (dtype 'S..'; an empty list has dtype 'S1');
    datasets are named ``<layer>_W_1:0`` and ``<layer>_b_1:0``.  With ``nested``,
    they are ``<layer>/kernel:0`` and ``<layer>/bias:0`` (a group inside the group),
    as some later Keras versions wrote them.
    """
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.0.2"
        f.attrs["layer_names"] = np.array([name.encode() for name in layers])
        for layer, arrays in layers.items():
            group = f.create_group(layer)
            suffixes = ["kernel:0", "bias:0"] if nested else ["W_1:0", "b_1:0"]
            sep = "/" if nested else "_"
            names = [f"{layer}{sep}{s}" for s in suffixes[: len(arrays)]]
            group.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for name, array in zip(names, arrays):
                create(group, name, array)
    return path


# Keras 3 names a layer's group after its class (snake_case) and a per-class counter.
KERAS3_CLASS = {"input": "input_layer", "pool": "max_pooling2d", "flatten": "flatten"}


def keras3_class(layer, arrays):
    """The Keras class of one of our test layers, as Keras 3 names its group."""
    if arrays:
        return "conv2d" if arrays[0].ndim == 4 else "dense"
    return next(cls for word, cls in KERAS3_CLASS.items() if word in layer)


def write_keras3(path, layers, names=True, model_name="vgg16"):
    """Write ``layers`` the way Keras 3's ``model.save_weights("x.weights.h5")`` does.

    From keras/src/saving/saving_lib.py (``_save_state``, ``_save_container_state``,
    ``H5IOStore``): the model's own variables go to a root group ``vars`` (empty
    here); each layer of ``model.layers`` gets a group ``layers/<class>[_<k>]``
    named by its class in snake_case and a counter per class (``conv2d``,
    ``conv2d_1``, ..., ``max_pooling2d``, ...), never by its name, holding a group
    ``vars`` with its variables as ``0``, ``1``, ... (kernel, bias).  Layers
    without weights still get an empty ``vars``.  From Keras 3.6 on (``names``),
    each ``vars`` group carries the layer's name in ``attrs["name"]``.  h5py lists
    groups alphabetically, so ``conv2d_10`` comes before ``conv2d_2``.
    """
    counters = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("vars")
        if names:
            root.attrs["name"] = model_name
        for layer, arrays in layers.items():
            cls = keras3_class(layer, arrays)
            k = counters[cls] = counters.get(cls, -1) + 1
            variables = f.create_group(f"layers/{cls}{f'_{k}' if k else ''}/vars")
            if names:
                variables.attrs["name"] = layer
            for i, array in enumerate(arrays):
                create(variables, str(i), array)
        f.create_group("optimizer/vars")
    return path


def expected_conv_state(layers):
    """What minidl should make of the conv layers: kernels as (out, in, kh, kw)."""
    state = {}
    for layer, arrays in layers.items():
        if len(arrays) == 2 and arrays[0].ndim == 4:
            state[f"{layer}.weight"] = arrays[0].transpose(3, 2, 0, 1)
            state[f"{layer}.bias"] = arrays[1]
    return state


def assert_state_equal(found, expected):
    assert list(found) == list(expected)
    for key in expected:
        assert found[key].shape == expected[key].shape, key
        assert found[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(found[key], expected[key])


# ---------------------------------------------------------------------------
# Reading the three layouts
# ---------------------------------------------------------------------------


def test_keras2_legacy_is_read_and_kernels_transposed(tmp_path):
    path = write_keras2(tmp_path / "notop.h5", NOTOP)
    info = read_weights(path)
    assert info.layout == "keras2"
    assert info.ignored == []
    assert_state_equal(info.state_dict, expected_conv_state(NOTOP))
    # One element by hand: minidl [out, in, y, x] == Keras [y, x, in, out].
    kernel = NOTOP["block1_conv2"][0]
    assert info.state_dict["block1_conv2.weight"].shape == (5, 4, 3, 3)
    assert info.state_dict["block1_conv2.weight"][4, 1, 2, 0] == kernel[2, 0, 1, 4]
    assert info.state_dict["block1_conv2.weight"].flags["C_CONTIGUOUS"]


def test_keras2_with_top_skips_dense_layers_and_says_so(tmp_path, capsys):
    path = write_keras2(tmp_path / "top.h5", WITH_TOP)
    state = load_weights(path)
    assert "ignored: fc1, fc2, predictions" in capsys.readouterr().out
    assert_state_equal(state, expected_conv_state(NOTOP))
    assert read_weights(path).ignored == ["fc1", "fc2", "predictions"]
    load_weights(path, verbose=False)
    assert capsys.readouterr().out == ""


def test_keras2_nested_weight_names_are_followed(tmp_path):
    path = write_keras2(tmp_path / "nested.h5", NOTOP, nested=True)
    with h5py.File(path) as f:  # the layout we mean to test
        assert "block1_conv1/block1_conv1/kernel:0" in f
    assert_state_equal(load_weights(path), expected_conv_state(NOTOP))


def test_keras2_whole_model_file_with_model_weights_group(tmp_path):
    inner = write_keras2(tmp_path / "inner.h5", NOTOP)
    path = tmp_path / "model.h5"
    with h5py.File(inner) as src, h5py.File(path, "w") as dst:
        src.copy(src["/"], dst, "model_weights")  # copies groups and attributes
        for key, value in src.attrs.items():
            dst["model_weights"].attrs[key] = value
    assert_state_equal(load_weights(path), expected_conv_state(NOTOP))


def test_keras3_layout(tmp_path):
    path = write_keras3(tmp_path / "vgg.weights.h5", WITH_TOP)
    with h5py.File(path) as f:  # the layout we mean to test
        assert f["layers/conv2d_1/vars"].attrs["name"] == "block1_conv2"
        assert "layers/dense_2/vars/1" in f and "layers/max_pooling2d/vars" in f
    info = read_weights(path)
    assert info.layout == "keras3"
    assert_state_equal(info.state_dict, expected_conv_state(NOTOP))
    assert info.ignored == ["fc1", "fc2", "predictions"]


def test_minidl_round_trip_keeps_order_dtypes_and_metadata(tmp_path):
    state = {
        "conv.weight": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv.bias": np.arange(4, dtype=np.float32),
        "bn.running_mean": np.zeros(4, np.float64),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "a.b": np.ones(2, np.float32),  # inserted last, sorts first: order must survive
    }
    path = save_state_dict(tmp_path / "sub" / "model.h5", state, metadata={"epochs": 3})
    info = read_weights(path)
    assert info.layout == "minidl"
    assert info.metadata == {"epochs": 3}
    assert_state_equal(info.state_dict, state)
    with h5py.File(path) as f:
        assert f.attrs["minidl_format"] == "minidl-state-dict"
        assert f.attrs["format_version"] == 1


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = save_state_dict(tmp_path / "m.h5", {"w": np.zeros(2, np.float32)})
    with pytest.raises(FileExistsError, match=r"m\.h5 already exists.*overwrite=True"):
        save_state_dict(path, {"w": np.ones(2, np.float32)})
    np.testing.assert_array_equal(load_weights(path)["w"], 0)
    save_state_dict(path, {"w": np.ones(2, np.float32)}, overwrite=True)
    np.testing.assert_array_equal(load_weights(path)["w"], 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_failed_save_leaves_old_file_intact_and_no_temp_file(tmp_path):
    path = save_state_dict(tmp_path / "m.h5", {"w": np.zeros(2, np.float32)})
    broken = {"w": np.ones(2, np.float32), "bad": np.array([object()])}  # h5py can't store it
    with pytest.raises(TypeError):
        save_state_dict(path, broken, overwrite=True)
    np.testing.assert_array_equal(load_weights(path)["w"], 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


# ---------------------------------------------------------------------------
# Errors name the file and the layer
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.h5: no such weight file"):
        load_weights(tmp_path / "nothere.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("hello, I am not HDF5")
    with pytest.raises(WeightsError, match=r"text\.h5: not an HDF5 file"):
        load_weights(path)


def test_truncated_file(tmp_path):
    good = save_state_dict(tmp_path / "good.h5", {"w": np.ones((64, 64), np.float32)})
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"cut\.h5: .*truncated"):
        load_weights(cut)


def test_unknown_layout(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(WeightsError, match=r"other\.h5: unknown weight layout.*something"):
        load_weights(path)


def test_layer_listed_but_missing(tmp_path):
    path = write_keras2(tmp_path / "w.h5", NOTOP)
    with h5py.File(path, "a") as f:
        del f["block1_conv2"]
    with pytest.raises(WeightsError, match=r"w\.h5: layer 'block1_conv2' .* missing"):
        load_weights(path)


def test_dataset_listed_but_missing(tmp_path):
    path = write_keras2(tmp_path / "w.h5", NOTOP)
    with h5py.File(path, "a") as f:
        del f["block1_conv1/block1_conv1_b_1:0"]
    with pytest.raises(
        WeightsError, match=r"w\.h5: layer 'block1_conv1': dataset 'block1_conv1_b_1:0' is missing"
    ):
        load_weights(path)


def test_nan_values_are_refused_on_load_and_save(tmp_path):
    layers = {"block1_conv1": conv(3, 3, 3, 4)}
    layers["block1_conv1"][0][0, 0, 0, 0] = np.nan
    path = write_keras2(tmp_path / "nan.h5", layers)
    with pytest.raises(WeightsError, match=r"nan\.h5: 'block1_conv1\.weight' contains 1 NaN/Inf"):
        load_weights(path)
    with pytest.raises(WeightsError, match=r"inf\.h5: 'w' contains 1 NaN/Inf"):
        save_state_dict(tmp_path / "inf.h5", {"w": np.array([1.0, np.inf])})
    assert not (tmp_path / "inf.h5").exists()


def test_check_state_dict_reports_everything(tmp_path):
    expected = {"conv.weight": (64, 3, 3, 3), "conv.bias": (64,), "fc.weight": (10, 64)}
    found = {
        "conv.weight": np.zeros((64, 3, 5, 5)),
        "conv.bias": np.zeros(64),
        "extra.bias": np.zeros(1),
    }
    with pytest.raises(WeightsError) as error:
        check_state_dict(expected, found, tmp_path / "model.h5")
    message = str(error.value)
    assert "model.h5" in message
    assert "missing keys: fc.weight" in message
    assert "unexpected keys: extra.bias" in message
    assert "conv.weight: expected shape (64, 3, 3, 3), found (64, 3, 5, 5)" in message
    assert "conv.bias" not in message
    check_state_dict({"conv.bias": (64,)}, {"conv.bias": np.zeros(64)}, "ok.h5")  # no error


# ---------------------------------------------------------------------------
# find_weights
# ---------------------------------------------------------------------------

OFFICIAL = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point the project folder and the cache at empty folders in tmp_path."""
    project = tmp_path / "project_weights"
    cache_home = tmp_path / "cache"
    project.mkdir()
    monkeypatch.setattr(download, "PROJECT_WEIGHTS_DIR", project)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.delenv("MINIDL_WEIGHTS", raising=False)
    (cache_home / "minidl").mkdir(parents=True)
    return project, cache_home / "minidl"


def test_find_weights_search_order(tmp_path, monkeypatch, places):
    project, cache = places
    (cache / "vgg16_any.h5").write_bytes(b"")
    assert find_weights() == cache / "vgg16_any.h5"
    (project / "vgg16_custom.h5").write_bytes(b"")
    assert find_weights() == project / "vgg16_custom.h5"
    (project / OFFICIAL).write_bytes(b"")
    assert find_weights() == project / OFFICIAL  # the official name wins in a folder
    env_file = tmp_path / "elsewhere.h5"
    env_file.write_bytes(b"")
    monkeypatch.setenv("MINIDL_WEIGHTS", str(env_file))
    assert find_weights() == env_file  # the environment variable wins over all


def test_find_weights_env_may_name_a_folder(tmp_path, monkeypatch, places):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "vgg16.h5").write_bytes(b"")
    monkeypatch.setenv("MINIDL_WEIGHTS", str(folder))
    assert find_weights() == folder / "vgg16.h5"


def test_find_weights_env_pointing_nowhere_is_an_error(tmp_path, monkeypatch, places):
    monkeypatch.setenv("MINIDL_WEIGHTS", str(tmp_path / "typo.h5"))
    with pytest.raises(FileNotFoundError, match=r"MINIDL_WEIGHTS=.*typo\.h5"):
        find_weights()


def test_find_weights_not_found_lists_every_place(places):
    project, cache = places
    with pytest.raises(FileNotFoundError) as error:
        find_weights("vgg16")
    message = str(error.value)
    for text in ["MINIDL_WEIGHTS", str(project), str(cache), "minidl weights fetch vgg16"]:
        assert text in message
    with pytest.raises(ValueError, match="unknown weights 'resnet'; available: vgg16"):
        find_weights("resnet")


# ---------------------------------------------------------------------------
# fetch, against a local HTTP server
# ---------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several chunks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


REQUESTS = []  # paths the server was asked for


class Handler(http.server.BaseHTTPRequestHandler):
    """/good: the payload.  /drop: announces the whole payload, sends half, hangs up."""

    def do_GET(self):
        REQUESTS.append(self.path)
        if self.path not in ("/good", "/drop"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/good":
            self.wfile.write(PAYLOAD)
        else:
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_good_hash(tmp_path, server):
    target = fetch("vgg16", directory=tmp_path / "w", url=f"{server}/good", md5=PAYLOAD_MD5)
    assert target == tmp_path / "w" / OFFICIAL
    assert target.read_bytes() == PAYLOAD
    assert [p.name for p in (tmp_path / "w").iterdir()] == [OFFICIAL]  # no temp file left


@pytest.mark.parametrize(
    "path, md5, reason",
    [
        ("/good", "0" * 32, "MD5 mismatch"),
        ("/drop", PAYLOAD_MD5, "connection closed after 128000 of 256000 bytes"),
        ("/missing", PAYLOAD_MD5, "404"),
    ],
)
def test_fetch_failure_leaves_nothing_and_explains(tmp_path, server, path, md5, reason):
    url = f"{server}{path}"
    with pytest.raises(DownloadError) as error:
        fetch("vgg16", directory=tmp_path, url=url, md5=md5)
    message = str(error.value)
    for text in [reason, url, str(tmp_path / OFFICIAL), "MINIDL_WEIGHTS"]:
        assert text in message
    assert list(tmp_path.iterdir()) == []


def test_fetch_offline(tmp_path):
    # Nothing listens on port 9 (discard) of 127.0.0.1 here: connection refused.
    with pytest.raises(DownloadError, match="could not download vgg16 weights"):
        fetch("vgg16", directory=tmp_path, url="http://127.0.0.1:9/x.h5")
    assert list(tmp_path.iterdir()) == []


def test_fetch_does_not_overwrite(tmp_path, server, capsys):
    mine = write_keras2(tmp_path / OFFICIAL, NOTOP).read_bytes()
    REQUESTS.clear()
    target = fetch("vgg16", directory=tmp_path, url=f"{server}/good", md5=PAYLOAD_MD5)
    assert target.read_bytes() == mine
    assert REQUESTS == []
    assert "already exists" in capsys.readouterr().out


def test_cli_fetch_is_satisfied_by_the_file_minidl_already_finds(tmp_path, monkeypatch, capsys):
    """Offline with MINIDL_WEIGHTS set, the README's `weights fetch` step must pass."""
    write_keras2(tmp_path / "mine.h5", NOTOP)
    monkeypatch.setenv("MINIDL_WEIGHTS", str(tmp_path / "mine.h5"))
    monkeypatch.setattr(weights.download, "_download", lambda *a, **k: pytest.fail("downloaded"))
    assert main(["weights", "fetch", "vgg16"]) == 0
    assert f"already here: {tmp_path / 'mine.h5'}" in capsys.readouterr().out


def test_fetch_refuses_a_broken_existing_file_and_keeps_it(tmp_path, server):
    (tmp_path / OFFICIAL).write_bytes(b"half a download")
    with pytest.raises(DownloadError, match=r"already exists but is not a usable weight file "
                                            r".*delete it and run again"):
        fetch("vgg16", directory=tmp_path, url=f"{server}/good", md5=PAYLOAD_MD5)
    assert (tmp_path / OFFICIAL).read_bytes() == b"half a download"


# ---------------------------------------------------------------------------
# The `minidl weights` command
# ---------------------------------------------------------------------------


def test_cli_info(tmp_path, capsys):
    path = write_keras2(tmp_path / "top.h5", WITH_TOP)
    assert main(["weights", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Keras 2 legacy" in out
    assert "block1_conv2.weight" in out and "(5, 4, 3, 3)" in out
    n = sum(a.size for a in expected_conv_state(NOTOP).values())
    assert f"4 arrays, {n:,} parameters" in out
    assert "ignored: fc1, fc2, predictions" in out


def test_cli_info_bad_file(tmp_path, capsys):
    (tmp_path / "x.h5").write_text("no")
    assert main(["weights", "info", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "x.h5: not an HDF5 file" in err


def test_cli_fetch_existing_file(tmp_path, capsys):
    write_keras2(tmp_path / OFFICIAL, NOTOP)
    assert main(["weights", "fetch", "vgg16", "--dir", str(tmp_path)]) == 0
    assert "already exists" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# The real file, when there is one
# ---------------------------------------------------------------------------


@pytest.mark.weights
def test_real_vgg16_file():
    try:
        path = find_weights("vgg16")
    except FileNotFoundError:
        pytest.skip("no VGG16 weights (set MINIDL_WEIGHTS or run `minidl weights fetch vgg16`)")
    info = read_weights(path)
    assert info.state_dict["block1_conv1.weight"].shape == (64, 3, 3, 3)
    assert info.state_dict["block5_conv3.weight"].shape == (512, 512, 3, 3)
    assert len(info.state_dict) == 26
    assert info.num_parameters == 14_714_688


def test_copy_of_real_layout_attributes_matches(tmp_path):
    """Our synthetic Keras 2 file uses the same attribute types as the real one."""
    real = weights.PROJECT_ROOT.parent / "shared" / "weights" / "vgg16_notop.h5"
    if not real.exists():
        pytest.skip("shared VGG16 file not present")
    ours = write_keras2(tmp_path / "ours.h5", NOTOP)
    with h5py.File(real) as r, h5py.File(ours) as o:
        assert r.attrs["layer_names"].dtype.kind == o.attrs["layer_names"].dtype.kind == "S"
        assert r["input_1"].attrs["weight_names"].dtype == o["input_1"].attrs["weight_names"].dtype
        assert list(r["block1_conv1"].attrs["weight_names"]) == list(
            o["block1_conv1"].attrs["weight_names"]
        )
