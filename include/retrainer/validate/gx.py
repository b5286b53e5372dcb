"""Great Expectations plumbing: the lazy import, an in-memory context, and costs switched off.

Importing GX takes seconds, so it happens here, inside functions, on first use. :func:`batches_released`
frees each batch's memory in a loop of validations; :func:`lean_gx_run` switches off what a run pays for
nothing; :func:`cached_docs_templates` compiles Data Docs' templates once per process.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


DOCS_SITE = "local_site"


@contextmanager
def batches_released() -> Iterator[Callable[[], None]]:
    """For a loop validating one batch after another: yields ``release()``, to call after each batch.

    GX keeps each batch's DataFrame (and its Arrow buffers) in reference cycles between the context,
    the execution engine and the batch; only a full garbage collection frees them, and with hundreds
    of thousands of long-lived objects (pandas, GX, MLflow...) Python runs one rarely. Validating
    28 daily partitions then held every one of them: about 14x a partition at 5M rows in the window
    (bench/bench_scale.py). The long-lived objects are frozen for the loop (``gc.freeze``: a
    collection skips them), so ``release()`` is a full collection of what the loop made: milliseconds.
    It then hands the freed memory back to the system (Arrow's pool and the C heap keep it otherwise),
    so the next batch starts from the same footprint instead of on top of the last one's leftovers.
    """
    import gc

    def release() -> None:
        _forget_current_context()
        gc.collect()
        _return_free_memory()

    gc.freeze()
    try:
        yield release
    finally:
        gc.unfreeze()


def _forget_current_context() -> None:
    """GX keeps the last context it made as the "current project" (``project_manager``), and with it
    that context's batch and its DataFrame, until the next context replaces it: while the next batch
    is read and validated. Each validation here makes its own context, so the last one is let go."""
    from great_expectations.data_context.data_context.context_factory import project_manager

    project_manager.set_project(None)


def _return_free_memory() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``); None elsewhere."""
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(libc_name).malloc_trim if libc_name else None
    except (OSError, AttributeError):  # other C libraries have no such call
        return None


def arrow_strings(df: pd.DataFrame) -> pd.DataFrame:
    """``string[python]`` columns as ``string[pyarrow]`` (lossless: same dtype name, values and NA).

    Converted once here rather than paid in every set, uniqueness and null check; ``object``
    columns are left alone because GX type-checks their values one by one.
    """
    import pandas as pd

    arrow = pd.StringDtype("pyarrow")
    converted = {
        name: df[name].astype(arrow)
        for name, dtype in df.dtypes.items()
        if isinstance(dtype, pd.StringDtype) and dtype.storage == "python"
    }
    return df.assign(**converted) if converted else df


@contextmanager
def lean_gx_run() -> Iterator[None]:
    """Three costs of a GX run that buy the gate nothing, switched off for one run.

    * Copy-on-Write: for every column map expectation GX filters nulls out of the WHOLE batch
      (``df[df[column].notnull()]``); without Copy-on-Write pandas deep-copies all columns even
      when nothing is null (about 0.2 s per expectation on 1M rows). With it the copy is lazy.
      Copy-on-Write is pandas' own mode (the default from pandas 3), so GX cannot alter our frame.
    * The batch fingerprint: GX 1.24 MD5-hashes every pandas batch under 1 GB
      (``PandasExecutionEngine.get_batch_data_and_markers``, ``HASH_THRESHOLD = 1e9``) only to
      store it as ``batch_markers.pandas_data_fingerprint`` in the result; there is no setting to
      turn it off, and it costs ~1.7 s per 1M rows, again in the re-run of failures. The partition
      is identified by its path (and by DVC's hash) anyway, so the threshold is lowered for the run.
    * Rebuilding an expectation's configuration for each argument read: see
      :func:`_expectation_kwargs_read_once`.
    """
    import pandas as pd
    from great_expectations.execution_engine import pandas_execution_engine as engine

    threshold = getattr(engine, "HASH_THRESHOLD", None)
    if threshold is not None:
        engine.HASH_THRESHOLD = 0
    try:
        with pd.option_context("mode.copy_on_write", True), _expectation_kwargs_read_once():
            yield
    finally:
        if threshold is not None:
            engine.HASH_THRESHOLD = threshold


# The GX versions whose Expectation argument getters _expectation_kwargs_read_once was written against
# (and tests/unit/test_validate_gx.py compares with, getter by getter); another version keeps its own.
KWARGS_GETTERS_CHECKED = ("1.24.",)


@contextmanager
def _expectation_kwargs_read_once() -> Iterator[None]:
    """GX 1.24's ``Expectation`` getters of its domain, success and run-time arguments, each reading
    ``self.configuration`` once instead of once per argument.

    ``Expectation.configuration`` is a property that serialises the whole (pydantic) expectation into a
    new ``ExpectationConfiguration`` on every access, and ``_get_domain_kwargs``/``_get_success_kwargs``
    and ``_get_success_kwarg`` read it once per key (twice in the last), dozens of times per expectation
    in a run: the largest single cost of a small partition's gate in a profile of a 28-day window. The
    replacements compute the same dicts from one reading; nothing changes the expectation in between.
    """
    from great_expectations.expectations.expectation import Expectation

    if not _gx_version().startswith(KWARGS_GETTERS_CHECKED):
        yield
        return
    # Counted, so overlapping runs (threads) leave GX's own getters in place after the last one.
    with _patch_lock:
        if _patch_depth[0] == 0:
            _originals.update({name: Expectation.__dict__[name] for name in _KWARGS_GETTERS})
            for name, getter in _KWARGS_GETTERS.items():
                setattr(Expectation, name, getter)
        _patch_depth[0] += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_depth[0] -= 1
            if _patch_depth[0] == 0:
                for name, original in _originals.items():
                    setattr(Expectation, name, original)


_patch_lock = threading.Lock()
_patch_depth = [0]
_originals: dict[str, Any] = {}


@functools.cache
def _gx_version() -> str:
    import great_expectations as gx

    return gx.__version__


# The replacements call each other directly (that is the saving) unless a subclass overrides the callee.


def _domain_kwargs(self, kwargs: dict | None = None) -> dict:
    kwargs = self.configuration.kwargs if kwargs is None else kwargs
    return {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}


def _success_kwargs(self, kwargs: dict | None = None) -> dict:
    kwargs = self.configuration.kwargs if kwargs is None else kwargs
    success = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
    own = type(self)._get_domain_kwargs
    success.update(_domain_kwargs(self, kwargs) if own is _domain_kwargs else own(self))
    return success


def _success_kwarg(self, key: str, default: Any = None, kwargs: dict | None = None) -> Any:
    kwargs = self.configuration.kwargs if kwargs is None else kwargs
    if key in kwargs:
        return kwargs[key]
    field = self.__fields__.get(key)
    if field is None:
        return default
    return field.default if not field.required else default


def _runtime_kwargs(self, runtime_configuration: dict | None = None) -> dict:
    from great_expectations.expectations.expectation import parse_result_format

    runtime_configuration = runtime_configuration or {}
    kwargs = self.configuration.kwargs
    cls = type(self)
    if cls._get_success_kwarg is _success_kwarg:
        runtime = {key: runtime_configuration.get(key, _success_kwarg(self, key, kwargs=kwargs))
                   for key in self.runtime_keys}
    else:
        runtime = {key: runtime_configuration.get(key, self._get_success_kwarg(key)) for key in self.runtime_keys}
    runtime.update(_success_kwargs(self, kwargs) if cls._get_success_kwargs is _success_kwargs
                   else self._get_success_kwargs())
    runtime["result_format"] = parse_result_format(runtime["result_format"])
    return runtime


_KWARGS_GETTERS: dict[str, Callable[..., Any]] = {
    "_get_domain_kwargs": _domain_kwargs,
    "_get_success_kwargs": _success_kwargs,
    "_get_success_kwarg": _success_kwarg,
    "_get_runtime_kwargs": _runtime_kwargs,
}


@functools.cache
def _template_cache():
    """Compiled Jinja templates kept for the life of the process (a ``jinja2.BytecodeCache`` in memory)."""
    import jinja2

    class InMemoryBytecodeCache(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self.compiled: dict[str, bytes] = {}

        def load_bytecode(self, bucket) -> None:
            if bucket.key in self.compiled:
                bucket.bytecode_from_string(self.compiled[bucket.key])

        def dump_bytecode(self, bucket) -> None:
            self.compiled[bucket.key] = bucket.bytecode_to_string()

    return InMemoryBytecodeCache()


@contextmanager
def cached_docs_templates() -> Iterator[None]:
    """Data Docs rendering with its Jinja templates compiled once per process, not once per page.

    GX 1.24 builds a new ``jinja2.Environment`` for every view it renders (``DefaultJinjaView.__init__``),
    so each page re-parses and re-compiles the same ~50 templates: about half the cost of building a
    partition's Data Docs. Jinja's own bytecode cache (keyed by template name and source checksum, so a
    changed template is compiled again) is attached to each of those environments for the build.
    """
    from great_expectations.render.view import view

    original = view.DefaultJinjaView.__init__
    cache = _template_cache()

    def init_with_cache(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.env.bytecode_cache = cache

    view.DefaultJinjaView.__init__ = init_with_cache
    try:
        yield
    finally:
        view.DefaultJinjaView.__init__ = original


def import_gx():
    """``great_expectations``, imported quietly and offline (the first import takes seconds)."""
    # Analytics would try the network; there is none here.
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    # GX's docs decorators log ~200 INFO lines at import once Airflow's structlog config is active;
    # leave the level alone when someone has set it on purpose.
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def ephemeral_context(docs_dir: Path | None):
    """An in-memory context: nothing is written to the CWD, and only docs_dir receives files."""
    gx = import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        # The default ephemeral config adds a docs site in a fresh temp folder; ours replaces it.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars would flood task logs
    )
    return gx.get_context(project_config=config, mode="ephemeral")
