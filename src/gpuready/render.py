"""Human output: small rich tables and a few lines, for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .plan import NoPlan, Plan


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def show_plan(plan: Plan, out: Console | None = None) -> None:
    out = out or console()
    if plan.device == "gpu":
        head = (f"[bold]Plan:[/] TensorFlow {plan.tensorflow} on the GPU, Python {plan.python}, "
                f"CUDA {plan.cuda}, cuDNN {plan.cudnn}, {plan.flavor} flavor -> env [bold]{plan.env}[/]")
    else:
        head = (f"[bold]Plan:[/] {plan.distribution} {plan.tensorflow} on the CPU, Python {plan.python}, "
                f"{plan.flavor} flavor -> env [bold]{plan.env}[/]")
    out.print(head)
    for reason in plan.reasons:
        out.print(f"  - {reason}")
    if plan.requirements:
        out.print("  packages: " + ", ".join(plan.requirements))
    if plan.conda_packages:
        out.print(f"  conda ({plan.conda_channel}): " + ", ".join(plan.conda_packages))
    for warning in plan.warnings:
        out.print(f"[yellow]warning[/] {warning.code}: {warning.message}")
    show_rejected(plan.rejected, out)


def show_rejected(rejected, out: Console) -> None:
    if not rejected:
        return
    table = Table(title="Rejected (newest first)", show_lines=False, title_justify="left")
    table.add_column("TensorFlow")
    table.add_column("code")
    table.add_column("why")
    for r in rejected:
        table.add_row(r.tensorflow, r.code, r.message)
    out.print(table)


def show_no_plan(error: NoPlan, out: Console | None = None) -> None:
    out = out or console()
    out.print("[bold red]No installable plan.[/]")
    for reason in error.reasons:
        out.print(f"  - {reason}")
    if error.ways_out:
        out.print("[bold]Ways out:[/]")
        for way in error.ways_out:
            out.print(f"  - {way}")
    show_rejected(error.rejected, out)
