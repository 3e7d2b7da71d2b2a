"""Small file-system checks shared by the command lines."""
import os
import tempfile


def unwritable_reason(folder):
    """Create ``folder`` if needed and prove a file can be written in it: ``None`` when it can,
    else the reason (``'Permission denied'``, ``'Not a directory'``, ...)."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
