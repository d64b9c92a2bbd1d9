"""WordNet for WUPS, offline: NLTK's own WordNet data if installed, else Debian's ``wordnet-base``.

Debian's package (``apt-get install wordnet-base``) holds the WordNet 3.0 database in
``/usr/share/wordnet`` but not the small ``lexnames`` file NLTK's reader opens: the files are
copied once (~30 MB) into a cache folder beside a written ``lexnames`` (NLTK refuses links that
lead outside its data folders). ``load_wordnet`` returns None, with the reason, when
neither source is present - WUPS is then reported as unavailable, never as zero.
"""

from __future__ import annotations

import os
import shutil
import warnings
from functools import lru_cache
from pathlib import Path

DEBIAN_WORDNET = Path("/usr/share/wordnet")
# WordNet 3.0's lexicographer files (lexnames(5WN)): number, name, syntactic category.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
INSTALL_HINT = "install it with `apt-get install wordnet-base` (Debian/Ubuntu) or `python -m nltk.downloader wordnet`"


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


@lru_cache(maxsize=1)
def load_wordnet():
    """(reader, None) or (None, reason)."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        return None, f"nltk is not installed; pip install nltk, then {INSTALL_HINT}"

    class Reader(WordNetCorpusReader):
        def get_version(self):
            # NLTK reads the data file's header again for the version on every wup_similarity
            # (about 60% of WUPS's time on DAQUAR); the version of an open database does not change.
            if not hasattr(self, "_version_read"):
                self._version_read = super().get_version()
            return self._version_read

    class WordNet30(Reader):
        def map_wn(self, version="wordnet"):
            # NLTK maps other WordNet versions onto its own copy for multilingual data; WUPS needs
            # none, and the Debian files are WordNet 3.0 itself.
            return None

    try:
        return Reader(str(nltk.data.find("corpora/wordnet")), None), None
    except LookupError:
        pass
    if not (DEBIAN_WORDNET / "data.noun").is_file():
        return None, f"no WordNet data found (NLTK data or {DEBIAN_WORDNET}); {INSTALL_HINT}"
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vqalab" / "wordnet"
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "lexnames").is_file():  # written last: its presence means the copy is complete
        for source in DEBIAN_WORDNET.iterdir():
            if source.is_file():
                shutil.copyfile(source, root / source.name)
        (root / "lexnames").write_text(lexnames_text())
    if str(root) not in nltk.data.path:  # NLTK reads only below its data paths
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():  # "multilingual functions are not available": not needed for WUPS
        warnings.simplefilter("ignore", UserWarning)
        return WordNet30(str(root), None), None
