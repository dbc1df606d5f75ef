"""`jepa-edge verify` and `jepa-edge keys new`: check a firmware bundle, make a signing key pair."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .app import app, console, user_errors

keys_app = typer.Typer(help="Ed25519 key pairs for signing bundles.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

_MARK = {True: "[green]ok[/]", False: "[bold red]FAIL[/]", None: "[yellow]skip[/]"}


@app.command()
@user_errors
def verify(
    bundle: Path = typer.Argument(..., help="bundle folder (holds manifest.json)"),
    public_key: Path = typer.Option(None, "--public-key", "-k", help="PEM public key the signature must match"),
    require_signature: bool = typer.Option(False, "--require-signature", help="fail unless signed and checked"),
    golden: bool = typer.Option(True, "--golden/--no-golden", help="re-run golden vectors on local back ends"),
    json_out: Path = typer.Option(None, "--json", help="also write the full report as JSON here"),
) -> None:
    """Hashes, signature, schema and golden vectors of a bundle; exit code 1 if anything fails."""
    from ..bundle import verify_bundle
    from ..io import atomic_write_json

    report = verify_bundle(bundle, public_key=public_key, require_signature=require_signature, run_golden=golden)
    table = Table(title=f"verify {bundle}", show_lines=False)
    for column in ("check", "file", "result", "detail"):
        table.add_column(column)
    for check in report.checks:
        table.add_row(check.kind, check.subject, _MARK[check.ok], check.detail)
    console.print(table)
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
    if not report.ok:
        for problem in report.problems:
            console.print(f"[bold red]problem:[/] {problem}")
        console.print(f"[bold red]{bundle}: does NOT verify ({len(report.problems)} problem(s))[/]")
        raise typer.Exit(code=1)
    print(json.dumps({"bundle": str(bundle), "ok": True}))
    console.print(f"[bold green]{bundle}: verifies[/]")


@keys_app.command("new")
@user_errors
def keys_new(
    out: Path = typer.Argument(..., help="path prefix: writes OUT.key (private, mode 0600) and OUT.pub"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing key pair"),
) -> None:
    """Make an ed25519 key pair for `jepa-edge build --sign OUT.key` and `jepa-edge verify --public-key OUT.pub`."""
    from ..bundle import new_keypair, public_key_fingerprint

    private_path, public_path = new_keypair(out, overwrite=force)
    console.print(f"private key: [bold]{private_path}[/] (keep secret)  public key: [bold]{public_path}[/]")
    console.print(f"fingerprint (sha256 of the raw public key): {public_key_fingerprint(public_path)}")
