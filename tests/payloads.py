"""Malicious pickle payloads for the untrusted-file tests: unpickling one leaves a marker file,
so a test can prove that loading never ran code."""
import os


class Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class ShellPayload(Payload):
    """Unpickling this runs a shell command that creates the marker file."""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
