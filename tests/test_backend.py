import numpy as np
import pytest

from gpucdp.backend import get_backend, probe, to_host
from gpucdp.errors import BackendUnavailableError, SettingsError


def test_auto_falls_back_to_cpu_and_says_why():
    backend = get_backend("auto")
    info = probe()
    if info["cuda_device"] is None:
        assert backend.name == "cpu" and "auto: CPU" in backend.reason
    assert backend.xp.__name__ in ("numpy", "cupy")
    assert backend.describe()["libraries"]["numpy"]


def test_explicit_gpu_names_what_is_missing():
    if probe()["cuda_device"] is not None:
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailableError, match="pip install 'gpucdp\\[gpu\\]'"):
        get_backend("gpu")


def test_unknown_backend_is_a_settings_error():
    with pytest.raises(SettingsError, match="backend='tpu'"):
        get_backend("tpu")


def test_host_components_and_to_host():
    backend = get_backend("cpu")
    assert backend.plan.parts["components"][0] == "numba-union-find"
    labels = backend.connected_components(5, np.array([0, 3]), np.array([1, 4]))
    assert labels.tolist() == [0, 0, 2, 3, 3]  # the smallest record of each component
    # the pipeline's int32 pairs, and a non-contiguous view of them, give the same labels
    pairs = np.array([[3, 9, 0, 9], [4, 9, 1, 9]], dtype=np.int32)
    assert backend.connected_components(5, pairs[0, ::2], pairs[1, ::2]).tolist() == [0, 0, 2, 3, 3]
    import pandas as pd

    series = pd.Series([1, 2])
    np.testing.assert_array_equal(to_host(series), [1, 2])  # not pandas' dict-like Series.get
