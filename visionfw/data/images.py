"""Training images decoded once, kept in memory or in an HDF5 cache, cropped in TensorFlow.

An :class:`ImageSet` holds the names and sizes of its images and one of two stores:

- ``memory``: every image in one flat ``uint8`` buffer; a patch is a single ``tf.gather``.
- ``h5:PATH``: every image as its own chunked dataset in an HDF5 file written once with
  h5py; a patch reads only its rows and columns from disk. For folders that do not fit in
  memory. The file records the source files' paths, sizes and modification times and is
  reused while they are unchanged; it is written to a temporary file and renamed.

A file that cannot be decoded is reported by name on stderr and skipped.
"""
import json
import os
import sys
import tempfile
import threading

import numpy as np

from visionfw.data import DataError

H5_FORMAT = 1


def warn(message):
    """A one-line warning on stderr (the training log)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def parse_cache(text):
    """``'memory'`` -> ``('memory', None)``; ``'h5:PATH'`` -> ``('h5', PATH)``."""
    text = (text or "memory").strip()
    if text == "memory":
        return "memory", None
    kind, sep, path = text.partition(":")
    if kind == "h5" and sep and path:
        return "h5", path
    raise DataError(f"--cache {text!r}: expected 'memory' or 'h5:PATH'")


def _folder_files(folders):
    from visionfw.imageio import ImageError, list_images

    files = []
    for folder in folders:
        try:
            found = list_images(folder)
        except ImageError as exc:
            raise DataError(str(exc)) from None
        if not found:
            raise DataError(f"{folder}: no images (png, bmp, jpg, jpeg, tif, tiff) in this folder")
        files.extend(found)
    return files


def _unique_name(path, seen):
    """``folder/file.png`` -> ``file`` unless another folder has a ``file`` too."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem not in seen else f"{os.path.basename(os.path.dirname(path))}/{stem}"
    seen.add(name)
    return name


def load_images(folders, on_skip=warn):
    """``[(name, uint8 HxWx3), ...]`` from image folders; undecodable files are skipped."""
    from visionfw.imageio import ImageError, read_image

    out, seen = [], set()
    for path in _folder_files(folders):
        try:
            image = read_image(path)
        except ImageError as exc:
            on_skip(f"skipping {exc}")
            continue
        out.append((_unique_name(str(path), seen), image))
    if not out:
        raise DataError(f"no readable image in {', '.join(map(str, folders))}")
    return out


class ImageSet:
    """Decoded images, their names and sizes, and a TensorFlow patch cropper.

    Build one with :meth:`from_arrays` or :meth:`from_folders`; :meth:`crop` is a
    TensorFlow function usable inside ``tf.data`` and ``tf.function``.
    """

    def __init__(self, names, shapes, store):
        self.names = list(names)
        self.shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        self.store = store

    def __len__(self):
        return len(self.names)

    @classmethod
    def from_arrays(cls, images):
        """From ``[(name, uint8 HxWx3), ...]``, kept in memory."""
        images = list(images)
        if not images:
            raise DataError("no training images")
        for name, image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
                raise DataError(f"{name}: expected uint8 (H, W, 3), got {image.dtype} "
                                f"{image.shape}")
        shapes = [image.shape[:2] for _, image in images]
        return cls([n for n, _ in images], shapes, MemoryStore([im for _, im in images]))

    @classmethod
    def from_folders(cls, folders, cache="memory", on_skip=warn):
        """From image folders, in memory (``cache='memory'``) or through ``'h5:PATH'``."""
        kind, path = parse_cache(cache)
        if kind == "memory":
            return cls.from_arrays(load_images(folders, on_skip))
        store = H5Store.open_or_build(path, _folder_files(folders), on_skip)
        return cls(store.names, store.shapes, store)

    def crop(self, index, top, left, size):
        """The ``uint8`` patch ``(size, size, 3)`` of image ``index`` at ``(top, left)``.

        ``index``, ``top``, ``left``: int64 scalar tensors; ``size``: a Python int.
        """
        return self.store.crop(index, top, left, size, self.shapes)


class MemoryStore:
    """All images in one flat ``uint8`` buffer; a patch is a gather of its pixels."""

    def __init__(self, images):
        sizes = [im.size for im in images]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.buffer = np.concatenate([im.reshape(-1) for im in images])
        self._flat = None

    def crop(self, index, top, left, size, shapes):
        import tensorflow as tf

        if self._flat is None:
            with tf.init_scope():     # one eager tensor, captured by every pipeline
                self._flat = tf.constant(self.buffer)
        width = tf.gather(tf.constant(shapes[:, 1]), index)
        offset = tf.gather(tf.constant(self.offsets), index)
        r = tf.range(size, dtype=tf.int64)
        pixel = (top + r)[:, None] * width + (left + r)[None, :]
        idx = offset + pixel[..., None] * 3 + tf.range(3, dtype=tf.int64)
        return tf.gather(self._flat, idx)


class H5Store:
    """Images as chunked HDF5 datasets ``images/000000``, ...; patches read from disk."""

    def __init__(self, path, names, shapes):
        self.path = path
        self.names = names
        self.shapes = shapes
        self._local = threading.local()

    @staticmethod
    def _manifest(files):
        entries = []
        for f in files:
            st = os.stat(f)
            entries.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
        return json.dumps({"format": H5_FORMAT, "files": entries})

    @classmethod
    def open_or_build(cls, path, files, on_skip=warn):
        import h5py

        manifest = cls._manifest(files)
        if os.path.isfile(path):
            try:
                with h5py.File(path, "r") as f:
                    if f.attrs.get("manifest") == manifest:
                        names = json.loads(f.attrs["names"])
                        for message in json.loads(f.attrs["skipped"]):
                            on_skip(message)
                        return cls(path, names, np.asarray(f["shapes"][...]))
            except (OSError, KeyError, ValueError):
                pass  # damaged or foreign: rebuild it
            on_skip(f"{path}: cache does not match the image folders; rebuilding it")
        return cls._build(path, files, manifest, on_skip)

    @classmethod
    def _build(cls, path, files, manifest, on_skip):
        import h5py

        from visionfw.imageio import ImageError, read_image

        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".h5", dir=folder)
            os.close(fd)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)     # as a plain write would create it
        except OSError as exc:
            raise DataError(f"--cache h5:{path}: cannot write there ({exc.strerror})") from None
        names, shapes, skipped, seen = [], [], [], set()
        try:
            with h5py.File(tmp, "w") as f:
                group = f.create_group("images")
                for file in files:
                    try:
                        image = read_image(file)
                    except ImageError as exc:
                        skipped.append(f"skipping {exc}")
                        on_skip(skipped[-1])
                        continue
                    chunk = (min(64, image.shape[0]), min(64, image.shape[1]), 3)
                    group.create_dataset(f"{len(names):06d}", data=image, chunks=chunk)
                    names.append(_unique_name(str(file), seen))
                    shapes.append(image.shape[:2])
                if not names:
                    raise DataError(f"no readable image for the cache {path}")
                f.create_dataset("shapes", data=np.asarray(shapes, dtype=np.int64))
                f.attrs["names"] = json.dumps(names)
                f.attrs["skipped"] = json.dumps(skipped)
                f.attrs["manifest"] = manifest
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return cls(path, names, np.asarray(shapes, dtype=np.int64))

    def _file(self):
        import h5py

        f = getattr(self._local, "file", None)
        if f is None:
            f = self._local.file = h5py.File(self.path, "r")
        return f

    def _read(self, index, top, left, size):
        ds = self._file()["images"][f"{int(index):06d}"]
        return np.ascontiguousarray(ds[top:top + size, left:left + size, :])

    def crop(self, index, top, left, size, shapes):
        import tensorflow as tf

        patch = tf.numpy_function(lambda i, t, l: self._read(i, t, l, size),
                                  [index, top, left], tf.uint8, stateful=False)
        return tf.ensure_shape(patch, (size, size, 3))
