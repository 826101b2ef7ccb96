"""Console scripts `zestfs` and `zestfs-origin`: exec the bundled binaries."""
import os
import sys

from . import binary


def _exec(name):
    path = binary(name)
    os.execv(path, [name] + sys.argv[1:])


def zestfs():
    _exec("zestfs")


def origin():
    _exec("zestfs-origin")
