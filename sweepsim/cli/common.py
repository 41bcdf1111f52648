"""Click helpers shared by the command groups."""
import math
from pathlib import Path

import click

from sweepsim.errors import InputError


class OneLineErrorGroup(click.Group):
    """Option and argument errors of the subcommands become one ``error: ...`` line and exit code 2, like the
    other bad input (InputError is reported by ``sweepsim``'s top-level group)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx is not None else ctx.command_path
            raise InputError(None, None, f"{e.format_message()} (see {cmd} --help)") from None


class FiniteFloat(click.FloatRange):
    """A float option in a range that is also finite (click's FloatRange lets NaN and inf through)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        x = super().convert(value, param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return x


class OutputPath(click.Path):
    """An output file or directory option: never empty (``--out ''`` would mean the working directory)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: give a path.", param, ctx)
        return super().convert(value, param, ctx)


def experiment_options(verb: str):
    """--out, --small, --backend and --address of the commands that run an experiment (grid, search)."""
    def wrap(f):
        for opt in reversed((
                click.option("--out", "out_dir", type=OutputPath(file_okay=False, path_type=Path),
                             help="Results directory (default: the experiment's out, else results/<name>/)."),
                click.option("--small", is_flag=True, help=f"{verb} the experiment's quick [small] variant."),
                click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                             help="local: this process, Numba threads over configurations; ray: Ray tasks over "
                                  "chunks."),
                click.option("--address", help="Ray cluster address (auto or HOST:PORT); without it a local Ray "
                                               "is started."))):
            f = opt(f)
        return f
    return wrap


def markdown_table(df, top: int, float_precision: int = 4) -> str:
    """The first ``top`` rows of a DataFrame as a Markdown table, every column shown, no dtypes or shape."""
    import polars as pl
    with pl.Config(tbl_rows=top, tbl_cols=-1, tbl_hide_dataframe_shape=True, fmt_str_lengths=40,
                   tbl_width_chars=400, float_precision=float_precision, tbl_formatting="ASCII_MARKDOWN",
                   tbl_hide_column_data_types=True):
        return str(df.head(top))
