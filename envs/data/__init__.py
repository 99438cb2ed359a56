"""Response caches: the canonical format, the embedded ``capitals`` cache and the real Llama results importer."""

from pathlib import Path

from envs.data.cache import CacheError, ResponseCache, load_cache, write_cache
from envs.data.llama_cascades import load_llama_cascades

EMBEDDED_DIR = Path(__file__).resolve().parent


def embedded_cache_path(name: str) -> Path:
    """Directory of a cache shipped inside the package (``capitals``)."""
    path = EMBEDDED_DIR / name
    if not (path / "meta.json").is_file():
        raise CacheError(f"no embedded cache named {name!r} (looked in {path})")
    return path


__all__ = [
    "CacheError",
    "ResponseCache",
    "load_cache",
    "write_cache",
    "load_llama_cascades",
    "embedded_cache_path",
]
