"""Helpers for the native backend's tests."""
import subprocess


def dynamic_symbols(library):
    """(defined, undefined) dynamic symbol names of a shared library (nm -D)."""
    def names(flag):
        out = subprocess.run(["nm", "-D", flag, str(library)], capture_output=True, text=True, check=True).stdout
        return [line.split()[-1] for line in out.splitlines() if line.strip()]

    return names("--defined-only"), names("--undefined-only")


def needed_libraries(library):
    out = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    return [line.split("[")[1].split("]")[0] for line in out.splitlines() if "(NEEDED)" in line]
