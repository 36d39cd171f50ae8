"""The config of a command: ``--config MODULE[:CLASS]`` names a Config subclass (or
instance) of a module on the Python path, in the current directory or in a .py file, and
``--set NAME=VALUE`` overrides its attributes (VALUE a Python literal, else a string).
"""
import ast
import copy
import difflib
import importlib
import importlib.util
import inspect
import os
import sys

import numpy as np

from mrcnn.cli.errors import CliError
from mrcnn.config import Config, ConfigError


def add_config_arguments(parser):
    parser.add_argument(
        "--config", default="mrcnn.config:Config", metavar="MODULE:CLASS",
        help="the Config subclass: 'module:Class' (a module on the Python path or in the "
             "current directory, or a file 'path/to/file.py:Class'); without ':Class' the "
             "module's one Config subclass (default: mrcnn.config:Config)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
        help="override a config attribute, e.g. --set STEPS_PER_EPOCH=100 --set "
             "IMAGE_MAX_DIM=512 (VALUE is a Python literal, else a string); repeatable")
    parser.add_argument("--logs", default="logs", metavar="DIR",
                        help="folder of run directories and checkpoints (default: ./logs)")


def _import_module(spec_text, module_name):
    """The module named by --config: a dotted name or a .py file."""
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = os.path.abspath(module_name)
        if not os.path.isfile(path):
            raise CliError(f"--config {spec_text}: the file {module_name!r} does not exist")
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())   # as `python -m` does: modules of the current folder
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.split(".")[0] == error.name.split(".")[0]:
            raise CliError(f"--config {spec_text}: cannot import module {module_name!r} "
                           f"({error}); is it in the current directory or on PYTHONPATH?"
                           ) from None
        raise


def _config_classes(module):
    return sorted(name for name, value in vars(module).items()
                  if inspect.isclass(value) and issubclass(value, Config)
                  and value.__module__ == module.__name__)


def config_class(spec_text):
    """The Config subclass (or instance) named by ``--config MODULE[:CLASS]``."""
    module_name, colon, class_name = spec_text.rpartition(":")
    if not (colon and class_name.isidentifier()):   # no ':Class' (or a drive letter, C:\...)
        module_name, class_name = spec_text, ""
    if not module_name:
        raise CliError(f"--config {spec_text!r}: expected MODULE:CLASS, e.g. myconfig:MyConfig")
    module = _import_module(spec_text, module_name)
    where = getattr(module, "__file__", module_name)
    if not class_name:
        found = _config_classes(module)
        if len(found) != 1:
            raise CliError(f"--config {spec_text}: module {module_name!r} ({where}) defines "
                           f"{len(found)} Config subclasses {found}; name one as "
                           f"{module_name}:CLASS")
        class_name = found[0]
    if not hasattr(module, class_name):
        raise CliError(f"--config {spec_text}: module {module_name!r} ({where}) has no "
                       f"attribute {class_name!r}; its Config subclasses: "
                       f"{_config_classes(module)}")
    value = getattr(module, class_name)
    is_class = inspect.isclass(value) and issubclass(value, Config)
    if not (is_class or isinstance(value, Config)):
        raise CliError(f"--config {spec_text}: {module_name}.{class_name} is not a Config "
                       f"subclass (it is {type(value).__name__})")
    return value


def parse_setting(text):
    """'NAME=VALUE' -> (NAME, value): VALUE as a Python literal, else the string itself."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise CliError(f"--set {text!r}: expected NAME=VALUE, e.g. --set STEPS_PER_EPOCH=100")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name, value


def apply_settings(config, settings):
    """Set each 'NAME=VALUE' of ``settings`` on ``config``; names must be config attributes."""
    known = [name for name in dir(config) if name.isupper()]
    for text in settings:
        name, value = parse_setting(text)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CliError(f"--set {text}: {type(config).__name__} has no attribute "
                           f"{name!r}{hint}")
        if isinstance(getattr(config, name), np.ndarray):
            value = np.array(value)
        try:
            setattr(config, name, value)
        except (ConfigError, AttributeError) as error:   # derived attributes refuse
            raise CliError(f"--set {text}: {error}") from None
    return config


def fixes_attribute(config, settings, name):
    """True when the config class (not the base Config), the instance or a --set gives
    attribute ``name``."""
    if any(parse_setting(text)[0] == name for text in settings):
        return True
    if name in vars(config):
        return True
    return any(name in vars(cls) for cls in type(config).__mro__
               if cls is not Config and issubclass(cls, Config))


def fixes_num_classes(config, settings):
    """True when the config class (not the base Config) or a --set gives NUM_CLASSES."""
    return fixes_attribute(config, settings, "NUM_CLASSES")


def load_config(args):
    """(config instance, whether it fixes NUM_CLASSES) from --config and --set."""
    value = config_class(args.config)
    try:
        config = value() if inspect.isclass(value) else _copy_config(value)
    except ConfigError as error:
        raise CliError(f"--config {args.config}: {error}") from None
    apply_settings(config, args.settings)
    settings = " ".join(f"--set {text}" for text in args.settings)
    validate_config(config, None, f"--config {args.config}" + (f" {settings}" if settings
                                                                  else ""))
    return config, fixes_num_classes(config, args.settings)


def _copy_config(instance):
    return copy.deepcopy(instance)


def validate_config(config, mode, label):
    try:
        config.validate(mode=mode)
    except ConfigError as error:
        raise CliError(f"{label}: {error}") from None
