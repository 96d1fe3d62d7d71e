#!/usr/bin/env python3
"""Makes model.tar.bz2 for modelsource tests: Go's standard library can read bzip2 but not write it.

Contents: model/m.onnx ("onnx-bytes") and model/run.sh (executable, "#!/bin/sh\n").
Run from this directory: python3 gen_bz2.py
"""
import io
import tarfile

def add(tf, name, data, mode):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tf.addfile(info, io.BytesIO(data))

with tarfile.open("model.tar.bz2", "w:bz2") as tf:
    d = tarfile.TarInfo("model")
    d.type = tarfile.DIRTYPE
    d.mode = 0o755
    tf.addfile(d)
    add(tf, "model/m.onnx", b"onnx-bytes", 0o644)
    add(tf, "model/run.sh", b"#!/bin/sh\n", 0o755)
