"""smsctl: clients, mailings and statistics from the command line (Typer, Rich for output).

export SMSCTL_URL=http://127.0.0.1:8000 SMSCTL_KEY=<an API key>
smsctl clients import clients.csv
smsctl mailings create --text "Hello" --start 2026-01-01T09:00:00Z --end 2026-01-02T00:00:00Z
smsctl mailings watch 42
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from smsctl.client import ApiError, Client, Counters, ImportJob

app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True)
clients_app = typer.Typer(help="The client base", no_args_is_help=True)
mailings_app = typer.Typer(help="Mailings and their lifecycle", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(mailings_app, name="mailings")

console = Console()
errors = Console(stderr=True)


@app.callback()
def _options(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="SMSCTL_URL", help="Base URL of the gateway")] = (
        "http://127.0.0.1:8000"
    ),
    key: Annotated[
        str, typer.Option(envvar="SMSCTL_KEY", help="API key (one of the gateway's API_KEYS)")
    ] = "",
) -> None:
    ctx.obj = (url, key)


def _client(ctx: typer.Context) -> Client:
    url, key = ctx.obj
    if not key:
        errors.print("[red]no API key:[/] set SMSCTL_KEY or pass --key")
        raise typer.Exit(2)
    return Client(url, key)


def _run(ctx: typer.Context, call: Any) -> Any:
    """Call the API; an error answer is printed and ends the command with status 1."""
    with _client(ctx) as client:
        try:
            return call(client)
        except ApiError as exc:
            errors.print(f"[red]HTTP {exc.status}[/] {json.dumps(exc.body, ensure_ascii=False)}")
            raise typer.Exit(1) from None


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    return table


# ---------------------------------------------------------------------------- clients


@clients_app.command("list")
def clients_list(
    ctx: typer.Context,
    page: int = typer.Option(1, min=1),
    page_size: int = typer.Option(50, min=1, max=1000),
) -> None:
    """One page of clients, newest first."""
    body = _run(ctx, lambda c: c.list_clients(page, page_size))
    columns = ["id", "phone", "operator_code", "tag", "time_zone"]
    console.print(
        _table(f"clients (page {page}, {body['count']} in all)", body["results"], columns)
    )


@clients_app.command("create")
def clients_create(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="11 digits starting with 7")],
    tag: Annotated[str | None, typer.Option()] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Europe/Moscow")] = None,
) -> None:
    """Add one client."""
    fields = (
        {"phone": phone}
        | ({"tag": tag} if tag else {})
        | ({"time_zone": time_zone} if time_zone else {})
    )
    created = _run(ctx, lambda c: c.create_client(**fields))
    console.print(f"client [bold]{created['id']}[/] created")


@clients_app.command("import")
def clients_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between job polls")] = 0.5,
) -> None:
    """Import a CSV file (columns phone,tag,time_zone): a bar for the upload, then one for the
    import job on the gateway with its counts as they grow."""
    columns = (
        TextColumn("[bold]{task.description:<6}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console) as progress:
        upload = progress.add_task("upload", total=path.stat().st_size, counts="")
        started = _run(ctx, lambda c: c.start_import(path, lambda n: progress.advance(upload, n)))
        if isinstance(started, ImportJob):
            task = progress.add_task("import", total=started.bytes_total or 1, counts="")

            def show(job: ImportJob) -> None:
                done = job.bytes_total if job.state == "succeeded" else job.bytes_read
                progress.update(task, completed=done, counts=_job_counts(job))

            job = _run(ctx, lambda c: c.follow_import(started, show, interval=interval))
    if isinstance(started, ImportJob):
        console.print(f"import job {job.url}: {job.state}")
        if job.error:
            errors.print(f"[red]import {job.state}:[/] {job.error}")
        result = job.result()
    else:
        result = started
    console.print(
        f"created {result.created}, updated {result.updated}, unchanged {result.unchanged}, "
        f"rejected {result.rejected}"
    )
    for error in result.errors[:20]:
        console.print(f"  line {error['line']}: {json.dumps(error['errors'], ensure_ascii=False)}")
    if result.rejected or (isinstance(started, ImportJob) and job.state != "succeeded"):
        raise typer.Exit(1)


def _job_counts(job: ImportJob) -> str:
    return (
        f"{job.rows_read} lines · {job.created} created · {job.updated} updated · "
        f"{job.rejected} rejected"
    )


# ---------------------------------------------------------------------------- mailings


TextOption = Annotated[str, typer.Option(help="The message")]
StartOption = Annotated[str, typer.Option(help="ISO 8601 start, e.g. 2026-01-01T09:00:00Z")]
EndOption = Annotated[str, typer.Option(help="ISO 8601 end")]
FilterOption = Annotated[str | None, typer.Option(help="operator codes and tags")]


def _mailing_fields(text: str, start: str, end: str, client_filter: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"text": text, "datetime_start": start, "datetime_end": end}
    if client_filter:
        fields["client_filter"] = client_filter
    return fields


@mailings_app.command("create")
def mailings_create(
    ctx: typer.Context,
    text: TextOption,
    start: StartOption,
    end: EndOption,
    client_filter: FilterOption = None,
) -> None:
    """Create a mailing."""
    fields = _mailing_fields(text, start, end, client_filter)
    mailing = _run(ctx, lambda c: c.create_mailing(**fields))
    console.print(f"mailing [bold]{mailing['id']}[/] created ({mailing['state']})")


@mailings_app.command("preview")
def mailings_preview(
    ctx: typer.Context,
    text: TextOption,
    start: StartOption,
    end: EndOption,
    client_filter: FilterOption = None,
) -> None:
    """Forecast a mailing before creating it: audience, when it leaves, segments, cost."""
    fields = _mailing_fields(text, start, end, client_filter)
    forecast = _run(ctx, lambda c: c.preview_mailing(**fields))
    audience, schedule = forecast["audience"], forecast["schedule"]
    unsendable, cost = forecast["unsendable"], forecast["cost"]
    console.print(
        f"audience [bold]{audience['total']}[/] · unsendable {unsendable['total']} · "
        f"{forecast['encoding']}, {forecast['characters']} characters, "
        f"{forecast['segments']} segment(s) each · cost {cost['total']} {cost['currency']}"
    )
    for reason in unsendable["reasons"]:
        console.print(f"  no send moment: {reason['reason']} ({reason['count']})")
    hours = [h for h in schedule["hours"] if h["messages"]]
    if hours:
        rows = [{"hour": h["hour"], "messages": h["messages"]} for h in hours]
        console.print(_table("Messages leaving per hour (UTC)", rows, ["hour", "messages"]))


def _command(ctx: typer.Context, mailing_id: int, command: str) -> None:
    mailing = _run(ctx, lambda c: c.command(mailing_id, command))
    console.print(f"mailing [bold]{mailing_id}[/]: {mailing['state']}")


@mailings_app.command("pause")
def mailings_pause(ctx: typer.Context, mailing_id: int) -> None:
    """Pause sending."""
    _command(ctx, mailing_id, "pause")


@mailings_app.command("resume")
def mailings_resume(ctx: typer.Context, mailing_id: int) -> None:
    """Resume a paused mailing."""
    _command(ctx, mailing_id, "resume")


@mailings_app.command("cancel")
def mailings_cancel(ctx: typer.Context, mailing_id: int) -> None:
    """Cancel a mailing for good."""
    _command(ctx, mailing_id, "cancel")


def _describe(counters: Counters) -> str:
    return (
        f"{counters.state}: {counters.delivered} delivered, {counters.undelivered} undelivered, "
        f"{counters.cancelled} cancelled, {counters.scheduled} scheduled"
    )


@mailings_app.command("watch")
def mailings_watch(
    ctx: typer.Context,
    mailing_id: int,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (0: never)")] = 0,
) -> None:
    """A live progress bar of a mailing's messages until it is finished or cancelled."""
    progress = Progress(
        TextColumn("[bold]mailing {task.fields[mailing]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counters]}"),
        console=console,
    )
    task = progress.add_task("watch", total=None, mailing=mailing_id, counters="")
    deadline = time.monotonic() + timeout if timeout else None
    with _client(ctx) as client, Live(progress, console=console, refresh_per_second=4):
        while True:
            try:
                counters = Counters.of(client.get_mailing(mailing_id))
            except ApiError as exc:
                errors.print(f"[red]HTTP {exc.status}[/] {exc.body}")
                raise typer.Exit(1) from None
            total = counters.created or counters.clients or None
            progress.update(
                task, total=total, completed=counters.done, counters=_describe(counters)
            )
            if counters.final:
                break
            if deadline is not None and time.monotonic() > deadline:
                errors.print("[yellow]timed out[/] before the mailing ended")
                raise typer.Exit(3)
            time.sleep(interval)
    console.print(f"mailing {mailing_id} {_describe(counters)}")


# ---------------------------------------------------------------------------- statistics


@app.command("stats")
def stats(
    ctx: typer.Context,
    mailing_id: Annotated[int | None, typer.Argument(help="one mailing (default: all)")] = None,
) -> None:
    """Overall statistics, or those of one mailing."""
    if mailing_id is None:
        body = _run(ctx, lambda c: c.overall_stats())
    else:
        body = _run(ctx, lambda c: c.mailing_stats(mailing_id))
    table = Table(title="statistics" if mailing_id is None else f"mailing {mailing_id}")
    table.add_column("figure")
    table.add_column("value")
    for name, value in body.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        table.add_row(name, str(shown))
    console.print(table)
