"""The `maskengine` command: one subcommand per job.

Options that configure a job come from the fields of its frozen config dataclass
(`config_options`), so no option list is typed twice.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import typer

app = typer.Typer(
    name="maskengine",
    help="An open data engine for promptable (segment anything) image segmentation.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """An open data engine for promptable (segment anything) image segmentation."""


def _option_type(tp: Any) -> Any:
    """The annotation Typer should see for a dataclass field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return typing.Optional[_option_type(args[0])] if len(args) == 1 else str  # noqa: UP045
    if origin is typing.Literal:
        return str
    return tp


def config_options(config_cls: type, param: str = "config") -> Callable:
    """Decorator: replace the parameter `param` (annotated with a frozen dataclass) of a
    Typer command by one `--option` per dataclass field; the command receives the built
    dataclass. Field help comes from `field(metadata={"help": ...})`."""
    hints = typing.get_type_hints(config_cls)

    def deco(func: Callable) -> Callable:
        sig = inspect.signature(func)
        fields = [f for f in dataclasses.fields(config_cls) if f.init]
        names = {f.name for f in fields}

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
            try:
                cfg = config_cls(**values)
            except (TypeError, ValueError) as exc:
                raise typer.BadParameter(str(exc)) from exc
            return func(**{param: cfg}, **kwargs)

        params = []
        for p in sig.parameters.values():
            if p.name != param:
                params.append(p)
                continue
            for f in fields:
                default = f.default if f.default is not dataclasses.MISSING else None
                opt = typer.Option(
                    default, "--" + f.name.replace("_", "-"), help=f.metadata.get("help", "")
                )
                params.append(inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=opt,
                    annotation=_option_type(hints[f.name]),
                ))
        # Typer reads the signature; required positionals must stay first.
        params.sort(key=lambda p: p.kind)
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return deco


@app.command()
def info() -> None:
    """Print the registered model sizes and whether their weights are bundled."""
    from rich.console import Console
    from rich.table import Table

    from .modeling.registry import MODEL_CONFIGS, bundled_weights_path

    table = Table(title="maskengine models")
    for col in ("name", "image size", "embed dim", "depth", "bundled weights"):
        table.add_column(col)
    for name, cfg in MODEL_CONFIGS.items():
        table.add_row(name, str(cfg.image_size), str(cfg.encoder_embed_dim),
                      str(cfg.encoder_depth), "yes" if bundled_weights_path(name) else "no")
    Console().print(table)


def main() -> None:  # pragma: no cover - console entry point
    app()
