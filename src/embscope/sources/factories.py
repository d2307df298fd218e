"""Model factories: resolve ``package.module:function`` or ``file.py:function``, and track the user's code.

A plain state dict needs its architecture: a factory returning the
``nn.Module`` it is loaded into.  The extraction cache keys on the code the
factory runs (:func:`factory_code_files`), and in the app (one long process)
an edited module is imported anew before the factory runs again, so the code
that runs is the code the key names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import site
import sys
import sysconfig
import threading
import types
import weakref
from pathlib import Path
from typing import Any

from embscope.errors import BadInputError
from embscope.sources.raw import first_line

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"^{_IDENT}(\.{_IDENT})*$")


#: Name prefix of the module a ``file.py:function`` factory runs in (executed afresh at each resolve).
_FILE_FACTORY_PREFIX = "embscope_factory_"


def resolve_factory(spec: str):
    """Return the callable named by ``package.module:function`` or ``path/file.py:function``.

    In a long-running process (the app), when the user's own modules that this
    factory loaded (as :func:`factory_code_files` finds them) were edited on
    disk since, they are imported anew first, so the code that runs is the
    code the extraction cache keys on (see "edited user code" below for how, and its limits).

    Raises
    ------
    BadInputError
        Bad syntax, module/file not found, import failure or missing function.
    """
    return _resolve_with_code(spec)[0]


def _import_factory(spec: str):
    """The callable named by ``spec`` (see :func:`resolve_factory`), imported as it stands."""
    if not spec or ":" not in spec:
        raise BadInputError(f"factory {spec!r} must look like package.module:function or path/to/file.py:function")
    module_part, func_name = spec.rsplit(":", 1)
    if not module_part or not _DOTTED.match(func_name):
        raise BadInputError(f"factory {spec!r} must look like package.module:function or path/to/file.py:function")
    if module_part.endswith(".py"):
        from embscope.sources.limits import require_regular

        file = require_regular(module_part, "factory file")  # a FIFO or device is refused, never imported
        name = _FILE_FACTORY_PREFIX + re.sub(r"\W", "_", str(file.resolve()))
        mod_spec = importlib.util.spec_from_file_location(name, file)
        if mod_spec is None or mod_spec.loader is None:
            raise BadInputError(f"factory file cannot be imported: {file}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise BadInputError(
                f"factory file {file.name} failed to import: {type(exc).__name__}: {first_line(exc, file)}"
            ) from exc
    else:
        if not _DOTTED.match(module_part):
            raise BadInputError(f"factory {spec!r} must look like package.module:function or path/to/file.py:function")
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as exc:
            raise BadInputError(f"factory module not found: {exc.name or module_part}") from exc
        except Exception as exc:
            raise BadInputError(
                f"factory module {module_part} failed to import: {type(exc).__name__}: {first_line(exc)}"
            ) from exc
    target: Any = module
    for part in func_name.split("."):
        if not hasattr(target, part):
            raise BadInputError(f"factory function {func_name!r} not found in {module_part}")
        target = getattr(target, part)
    if not callable(target):
        raise BadInputError(f"factory {spec!r} is not callable")
    return target


def factory_code_files(spec: str) -> tuple[Path, ...]:
    """Resolve the factory ``spec`` and return the files of the user's own code it loaded.

    The extraction cache keys on these files' contents, so editing the
    factory's module, or a helper module it imports, recomputes the vectors.
    Resolving first also means a factory that no longer imports is refused
    (``BadInputError``) before any cached entry could answer for it.

    The rule for "the user's own code": a module loaded while the factory was
    resolved, or reachable from the factory's module through its globals
    (modules, and the modules that define its classes and functions), whose
    file lies outside the Python installation — not in the standard library,
    not in a ``site-packages``/``dist-packages`` folder, not in EmbScope
    itself (its own changes are covered by the cache's version) and not in a
    frozen bundle.  Installed libraries change only with their version,
    which is not worth hashing thousands of files for; editable installs of
    the user's own packages live outside those folders and are covered.
    Imports that happen only when the factory function runs are not seen.

    Raises
    ------
    BadInputError
        As :func:`resolve_factory`.
    """
    return _resolve_with_code(spec)[1]


def _user_code_modules(func, spec: str, before: set[str]) -> list[tuple[types.ModuleType, Path]]:
    """The user's own modules (with their files) loaded since ``before`` or reachable from the factory
    (the rule of :func:`factory_code_files`)."""
    module_part = spec.rsplit(":", 1)[0]
    start: list[Any] = [sys.modules[name] for name in set(sys.modules) - before]
    for name in (getattr(func, "__module__", None), None if module_part.endswith(".py") else module_part):
        if isinstance(name, str) and name in sys.modules:
            start.append(sys.modules[name])
    roots = _installation_roots()
    found: list[tuple[types.ModuleType, Path]] = []
    seen: set[int] = set()
    while start:
        module = start.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        path = _user_code_file(module, roots)
        if path is None:
            continue  # an installed library: not hashed, and its globals are not followed
        found.append((module, path))
        start.extend(_referenced_modules(module))
    return found


def _referenced_modules(module: types.ModuleType) -> list[types.ModuleType]:
    """Modules ``module``'s globals are or come from (``import x``, ``from x import f``, a class of x),
    and its parent package (importing ``pkg.model`` runs ``pkg/__init__.py`` first)."""
    name = getattr(module, "__name__", None)
    parent = name.rpartition(".")[0] if isinstance(name, str) else ""
    out = [sys.modules[parent]] if parent in sys.modules else []
    for value in list(vars(module).values()):
        if isinstance(value, types.ModuleType):
            out.append(value)
            continue
        try:
            owner = getattr(value, "__module__", None)
        except Exception:  # noqa: BLE001 - an odd object's attribute lookup must not fail the key
            continue
        if isinstance(owner, str) and owner != "__main__" and owner in sys.modules:
            out.append(sys.modules[owner])
    return out


def _installation_roots() -> tuple[Path, ...]:
    """Folders whose modules are part of the Python installation or of EmbScope, not the user's code."""
    import embscope

    paths = sysconfig.get_paths()
    roots = [paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    roots += list(getattr(site, "getsitepackages", list)())
    roots += [getattr(site, "USER_SITE", None), getattr(sys, "_MEIPASS", None), str(Path(embscope.__file__).parent)]
    return tuple(Path(root).resolve() for root in roots if root)


def _user_code_file(module: types.ModuleType, roots: tuple[Path, ...]) -> Path | None:
    """The module's file when it is the user's own code (see :func:`factory_code_files`), else None."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file:
        return None  # built-in, frozen or namespace package: nothing to hash
    path = Path(file).resolve()
    if not path.is_file() or {"site-packages", "dist-packages"} & set(path.parts):
        return None
    if any(path.is_relative_to(root) for root in roots):
        return None
    return path


# --------------------------------------------------------------------------- edited user code
#
# The app is one long process, and Python imports a module once: without this, an edit to a package
# factory's module, or to a helper module a factory imports, would not run until a restart — while the
# extraction cache key (factory_code_files) follows the files on disk, so an extraction would store the
# old code's vectors under the new code's key.  So each factory's user modules are remembered with a hash
# of their files, and when one of them changed the factory's user modules are all forgotten
# (removed from sys.modules) before it is imported again: the import then runs them as a new process
# would, dependencies before dependents by Python's own import order.  That is used rather than
# importlib.reload, module by module: a dependent holds what it took from a helper by value
# (``from helper import SCALE``, ``class Net(helper.Base)``) and so has to run again too, in the right
# order, which the modules' globals cannot tell.
#
# Limits:
# - Objects made by the old code (a model already built, another library's reference to an old module)
#   keep the old code; a resolve builds a new model, so an extraction is not affected.
# - Only the modules found as factory_code_files finds them are followed: an import made inside the
#   factory function when it runs, or a module reached only through an installed library, is not
#   (nor is it in the cache key).  A module already imported, not by this factory, before the factory's
#   first resolve and reachable only by a value it exported (``from helper import SCALE``) is not found.
# - A module is hashed just after the import that first finds it: an edit in between is not seen.  A file
#   edited between computing the cache key and building the model runs newer code than the key says.
# - A ``file.py:function`` factory's own file needs none of this: it is executed afresh at every resolve.

#: Per factory (its spec without the function): the user's modules its resolves found,
#: module name → (the module, its file, hash of the file when imported).
_USER_CODE: dict[str, dict[str, tuple[weakref.ref, Path, str | None]]] = {}
_USER_CODE_LOCK = threading.RLock()


def _resolve_with_code(spec: str) -> tuple[Any, tuple[Path, ...]]:
    """The factory and the files of the user's own code it loaded; edited modules are imported anew first."""
    origin = spec.rsplit(":", 1)[0]
    with _USER_CODE_LOCK:  # one resolve at a time: two workers must not forget and import the same modules
        _forget_edited_user_code()
        before = set(sys.modules)
        func = _import_factory(spec)
        found = _user_code_modules(func, spec, before)
        group = _USER_CODE.setdefault(origin, {})
        for module, path in found:
            name = getattr(module, "__name__", None)
            # Only a module registered under its name can be imported anew; the factory file's own module
            # runs afresh anyway, and __main__ is never forgotten.
            if not isinstance(name, str) or name == "__main__" or name.startswith(_FILE_FACTORY_PREFIX):
                continue
            if sys.modules.get(name) is module and (name not in group or group[name][0]() is not module):
                group[name] = (weakref.ref(module), path, _file_hash(path))
        # Remembered modules count even when this walk did not reach them (``from helper import SCALE``
        # leaves no trace in the factory module's globals once the helper was imported).
        files = {path for _, path in found} | {path for _, path, _ in group.values()}
    return func, tuple(sorted(files))


def _forget_edited_user_code() -> None:
    """Remove from ``sys.modules`` every remembered module of a factory whose user code changed.

    Changed: a module's file no longer has the hash it was imported with, or a module is no longer the one
    in ``sys.modules`` (forgotten, or imported anew for another factory that shares it).
    """
    changed = True
    while changed:  # forgetting one factory's modules can make another factory that shares them stale
        changed = False
        for origin, group in list(_USER_CODE.items()):
            edited = {
                path
                for name, (ref, path, digest) in group.items()
                if ref() is None or sys.modules.get(name) is not ref() or _file_hash(path) != digest
            }
            if not edited:
                continue
            for name, (ref, path, _digest) in group.items():
                if ref() is not None and sys.modules.get(name) is ref():
                    del sys.modules[name]
                    changed = True
                if path in edited:
                    _drop_bytecode(path)
            del _USER_CODE[origin]
    importlib.invalidate_caches()


def _file_hash(path: Path) -> str | None:
    """SHA-256 of the file (None when it cannot be read): content, not mtime, as two quick same-size edits
    can share an mtime."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _drop_bytecode(path: Path) -> None:
    """Remove the file's cached bytecode: it is checked by the source's mtime in whole seconds and its size,
    so a same-size edit within the second would otherwise import the old code."""
    try:
        Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
    except (OSError, ValueError, NotImplementedError):
        pass  # no cache, or one we cannot remove: the import still sees a changed source's newer mtime


def build_from_factory(spec: str):
    """Call the factory and check it returns an ``nn.Module``."""
    import torch

    func = resolve_factory(spec)
    try:
        model = func()
    except Exception as exc:
        raise BadInputError(f"factory {spec} raised {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(model, torch.nn.Module):
        raise BadInputError(f"factory {spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model
