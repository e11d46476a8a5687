import pickle

from tests.payloads import Payload, ShellPayload


def test_payloads_are_live(tmp_path):
    """The payloads really would run if unpickled, so the refusal tests that use them mean
    something."""
    for i, cls in enumerate((Payload, ShellPayload)):
        marker = tmp_path / f"ran{i}"
        result = pickle.loads(pickle.dumps(cls(marker)))
        if hasattr(result, "close"):
            result.close()
        assert marker.exists()
