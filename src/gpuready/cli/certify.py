"""`invoke certify` and `invoke doctor`: prove an environment trains on the GPU, or say why not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import task
from invoke.exceptions import Exit

from ..config import Settings
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..files import check_writable
from ..model.facts import HostFacts
from ..model.flags import DEFAULT_LEVEL, parse_level, parse_seconds
from ._common import cli_errors, load_matrix, print_json, settings
from .render import STYLE, console, e, show_certificate, show_findings

CERTIFY_HELP = {
    "env": "the environment's name (under the configured prefix root)",
    "prefix": "the environment's directory (any Python environment with TensorFlow)",
    "level": "0 static, 1 smoke, 2 train (default), 3 multi-GPU",
    "allow-cpu": "a cpu-only result exits 0 instead of 3",
    "json": "print the certificate as JSON",
    "junit": "also write the checks as JUnit XML to this file",
    "verify": "only say whether the existing certificate still holds (no TensorFlow import): its status, "
              "level and figures must follow from its recorded checks, every installed file must match "
              "its wheel's RECORD",
    "timeout": "time limit per level in seconds (default 600, or the gpuready.certify_timeout setting)",
    "prom": "also write the certificate as Prometheus metrics to this .prom file (node_exporter's "
            "textfile collector), atomically; with --verify, whether it still holds",
    "sign": "sign the new certificate with this SSH private key (ssh-keygen -Y sign, namespace "
            "gpuready-certificate), writing certificate.json.sig beside it",
    "allowed-signers": "with --verify: the certificate must carry a good signature by a key in this "
                       "allowed signers file (ssh-keygen(1) format); a missing or bad one fails",
}
DOCTOR_HELP = {
    "env": "diagnose the environment of this name",
    "prefix": "diagnose the environment in this directory",
    "log": "diagnose a log file (e.g. one a user pasted), without any environment",
    "json": "print the diagnosis as JSON",
}


def _host(conf: Settings) -> HostFacts:
    from ..detect import detect_host

    return detect_host(load_matrix(conf))


def target_prefix(conf: Settings, env: str | None, prefix: str | None) -> Path:
    """--env NAME or --prefix DIR (not both); neither: the environment planned for this host."""
    from ..env.layout import resolve_prefix

    if env and prefix:
        raise UsageError("give --env or --prefix, not both")
    if prefix is not None:
        return resolve_prefix("", prefix, conf)
    if env:
        return resolve_prefix(env, None, conf)
    from ..model.plan import NoPlan
    from ..model.planner import make_plan

    try:
        plan = make_plan(_host(conf), load_matrix(conf))
    except NoPlan:
        raise UsageError("no environment given and none can be planned for this host: "
                         "give --env NAME or --prefix DIR") from None
    return resolve_prefix(plan.env, None, conf)


def _timeout(conf: Settings, value: Any) -> float | None:
    if value is None:
        return conf.certify_timeout
    return parse_seconds(value, "--timeout")


def _progress(out: Any):
    def on_event(kind: str, data: Any) -> None:
        if kind == "level":
            out.print(f"[bold]level {data}[/]")
        elif kind == "check":
            detail = e(f" ({data.reason})") if data.reason else ""
            out.print(f"  {e(data.name)}: [{STYLE[data.status]}]{data.status}[/] {data.seconds:.1f} s{detail}")
    return on_event


@task(help=CERTIFY_HELP)
@cli_errors
def certify(c, env=None, prefix=None, level=None, allow_cpu=False, json=False, junit=None, verify=False,
            timeout=None, prom=None, sign=None, allowed_signers=None):
    """Prove that an environment trains a Conv2D model on the GPU; write its certificate."""
    from ..certify import service, signing
    from ..certify.junit import write_junit
    from ..certify.runner import environment_python
    from ..env.layout import certificate_path
    from ..env.transaction import Layout, prefix_lock, sweep_stale

    conf = settings(c)
    chosen = parse_level(DEFAULT_LEVEL if level is None else level)
    seconds = _timeout(conf, timeout)
    junit_path = check_writable(junit, "--junit") if junit is not None else None
    prom_path = None
    if prom is not None:
        from ..certify.metrics import check_prom_path

        prom_path = check_prom_path(prom)
    key = signers = None
    if sign is not None:
        if verify:
            raise UsageError("--sign signs a new certificate; it does not go with --verify "
                             "(check a signature with --verify --allowed-signers FILE)")
        key = signing.check_signing_key(sign)
    if allowed_signers is not None:
        if not verify:
            raise UsageError("--allowed-signers goes with --verify")
        signers = signing.check_allowed_signers(allowed_signers)
    target = target_prefix(conf, env, prefix)
    environment_python(target)  # a missing prefix is bad input (exit 2)
    layout = Layout(target)
    for removed in sweep_stale(layout):
        console(stderr=True).print(e(f"Removed {removed.name}, left beside {target} by an install that was killed."))
    if verify:
        result = service.verify(target, _host(conf), allowed_signers=signers)
        if prom_path is not None:
            from ..certify.metrics import write_prom

            # a certificate that contradicts its evidence or its signature is reported as none
            write_prom(prom_path, result.certificate if result.trusted else None, verified=result.ok,
                       prefix=target)
        if json:
            print_json(result.to_dict())
        else:
            out = console()
            if result.ok:
                cert = result.certificate
                assert cert is not None
                signed = f", signed by {e(result.signer)}" if result.signer else ""
                out.print(f"[green]The certificate still holds[/] ({e(cert.status)}, level {cert.level}, "
                          f"{e(cert.created)}{signed}): {e(result.path)}")
            else:
                out.print(f"[red]The certificate does not hold[/] for {e(target)}:")
                for reason in result.reasons:
                    out.print(f"  - {e(reason)}")
        raise Exit(code=EXIT_OK if result.ok else EXIT_FAILED)

    err = console(stderr=True)
    err.print(e(f"Certifying {target} up to level {chosen} ..."))
    with prefix_lock(layout, shared=True):  # no install replaces it while it is tested
        cert = service.certify(target, level=chosen, allow_cpu=allow_cpu, timeout=seconds,
                               host=_host(conf), on_event=_progress(err), matrix=load_matrix(conf))
    path = certificate_path(target)
    if junit_path is not None:
        write_junit(cert, junit_path)
    if prom_path is not None:
        from ..certify.metrics import write_prom

        write_prom(prom_path, cert)
    if json:
        print_json(cert.to_dict())
    else:
        show_certificate(cert, console(), path if path.exists() else None)
    if key is not None:
        err.print(e(f"Signed with {key}: {signing.sign(path, key)}"))
    code = cert.exit_code()
    if code:
        raise Exit(code=code)


@task(help=DOCTOR_HELP)
@cli_errors
def doctor(c, env=None, prefix=None, log=None, json=False):
    """Diagnose an environment, a log file, or this host, without training anything."""
    from ..certify import doctor as doctor_mod

    conf = settings(c)
    matrix = load_matrix(conf)
    result = doctor_mod.Diagnosis()
    if log is not None:
        doctor_mod.diagnose_log(Path(log).expanduser(), result, matrix)
    if env or prefix or log is None:
        host = _host(conf)
        if env or prefix:
            doctor_mod.diagnose_environment(target_prefix(conf, env, prefix), host, result, matrix)
        else:
            doctor_mod.diagnose_host(host, result, matrix)
    doctor_mod.finish(result)
    if json:
        print_json(result.to_dict())
    else:
        from .render import checks_table

        out = console()
        out.print(f"[bold]Diagnosis of {e(', '.join(result.sources))}[/]")
        if result.checks:
            out.print(checks_table(result.checks))
        probe = result.libraries
        if probe and probe.get("libraries"):
            failed = probe.get("first_failure")
            out.print("CUDA libraries: " + (f"[red]{e(failed['name'])} does not load[/]" if failed
                                            else "[green]all load[/]"))
        show_findings(result.findings, out)
    if result.problem:
        raise Exit(code=EXIT_FAILED)
