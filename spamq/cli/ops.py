"""Operator subcommands for ``spamq``: ``models ...`` (registry) and ``secrets ...`` (Vault).

Wire into the main parser with ``add_models_parser(sub)`` and ``add_secrets_parser(sub)``;
each leaf sets ``func(args) -> int``. Settings come from ``args.settings`` when the main
parser puts one there, else :func:`spamq.settings.get_settings`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from spamq.settings import Settings, get_settings


def _settings(args: argparse.Namespace) -> Settings:
    return getattr(args, "settings", None) or get_settings()


def _registry(settings: Settings) -> Any:
    from spamq.models.registry import ModelRegistry

    return ModelRegistry.from_settings(settings)


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def _guard(fn: Any) -> Any:
    """Turn the expected failures into one line on stderr and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        from spamq.models.manifest import ManifestError
        from spamq.models.registry import RegistryError
        from spamq.secrets.sources import SecretError
        from spamq.storage.artifacts import ArtifactError

        try:
            return fn(args)
        except (ArtifactError, ManifestError, RegistryError, SecretError) as exc:
            return _fail(exc)

    run.__name__ = fn.__name__
    return run


# --- models ---------------------------------------------------------------------------------


@_guard
def models_push(args: argparse.Namespace) -> int:
    s = _settings(args)
    name = args.name or s.model_name
    version = _registry(s).push(Path(args.dir), name=name, verify_hashes=args.verify_hashes)
    print(f"{name}/{version}")
    if args.alias:
        _registry(s).promote(name, version, alias=args.alias)
        print(f"{name}/{args.alias} -> {version}")
    return 0


@_guard
def models_list(args: argparse.Namespace) -> int:
    s = _settings(args)
    reg = _registry(s)
    name = args.name or s.model_name
    aliases = reg.aliases(name)
    versions = reg.list(name)
    out = {
        "name": name,
        "store": reg.store.describe(),
        "versions": versions,
        "aliases": aliases,
        # promotions that overrode the gate, with the operator's reason
        "overrides": {v: p for v in versions
                      if (p := [r for r in reg.record(name, v).get("promotions", [])
                                if r.get("override_reason")])},
    }
    print(json.dumps(out, indent=2))
    return 0


@_guard
def models_show(args: argparse.Namespace) -> int:
    s = _settings(args)
    reg = _registry(s)
    name = args.name or s.model_name
    version = reg.resolve_ref(name, args.version)
    manifest = reg.manifest(name, version)
    keys = ("base", "data_sha256", "decision_threshold", "feedback", "score")
    out = {
        "name": name, "version": version,
        "aliases": sorted(a for a, v in reg.aliases(name).items() if v == version),
        **{k: manifest[k] for k in keys if k in manifest},
        "split_seed": manifest.get("split", {}).get("seed"),
        "promotions": reg.record(name, version).get("promotions", []),
    }
    print(json.dumps(out, indent=2))
    return 0


def _model_dir(s: Settings, ref: str, name: str | None = None) -> Path:
    """A local model directory, or a registry version or alias of ``name`` pulled into the
    cache."""
    if Path(ref).is_dir():
        return Path(ref)
    return _registry(s).pull(name or s.model_name, ref, cache_dir=s.model_cache_dir)


def _feedback_set(s: Settings, candidate: Path, against: Path | None, spec: str | None,
                  holdout: float) -> tuple[list[str], list[int], list[str]] | None:
    """The feedback the gate evaluates on: ``--feedback``'s newest share, else the
    candidate's own held-out feedback (named in its manifest), else the against model's
    (neither trained on it), else none."""
    from spamq.training import feedback

    record = None
    for model in (candidate, against):
        if model is not None and record is None:
            record = json.loads((model / "manifest.json").read_text()).get("feedback")
    try:
        fb = feedback.holdout_of(record, s, spec=spec, holdout=holdout)
    except ValueError as exc:
        raise SystemExit(f"error: feedback: {exc}") from exc
    if fb is not None:
        print(f"feedback held out: {len(fb[0])} texts ({sum(fb[1])} spam)", file=sys.stderr)
    return fb


def _gate(s: Settings, candidate: Path, against: Path | None, *, data: Path | None,
          files: list[Path], json_out: Path | None, feedback: str | None = None,
          feedback_holdout: float = 0.2) -> tuple[list[dict], str]:
    """Evaluate both models on every set; the side-by-side rows and the printed table."""
    from spamq.training import evaluation

    data = data or s.data_path
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    fb = _feedback_set(s, candidate, against, feedback, feedback_holdout)
    cand = evaluation.evaluate_dir(candidate, data_path=data, extra=files, feedback=fb, log=log)
    # the candidate's split seed for both, so both see the same UCI test texts
    seed = int(json.loads((candidate / "manifest.json").read_text())["split"]["seed"])
    base = (evaluation.evaluate_dir(against, data_path=data, extra=files, split_seed=seed,
                                    feedback=fb, log=log) if against else None)
    rows = evaluation.compare(cand, base or {"sets": {}})
    table = evaluation.format_table(rows, f"candidate {cand['version']}",
                                    f"against {base['version']}" if base else "against -")
    if json_out:
        json_out.write_text(json.dumps({"candidate": cand, "against": base, "rows": rows},
                                       indent=2, sort_keys=True) + "\n")
    return rows, table


@_guard
def models_evaluate(args: argparse.Namespace) -> int:
    s = _settings(args)
    candidate = _model_dir(s, args.candidate, args.name)
    against = _model_dir(s, args.against, args.name) if args.against else None
    rows, table = _gate(s, candidate, against, data=args.data, files=args.file,
                        json_out=args.json, feedback=args.feedback,
                        feedback_holdout=args.feedback_holdout)
    print(table)
    worse = [r for r in rows if r["worse"]]
    if against is not None:
        print(f"{len(worse)} of {len(rows)} figures worse beyond the against model's 95% "
              "bootstrap interval")
    return 0


@_guard
def models_promote(args: argparse.Namespace) -> int:
    s = _settings(args)
    alias = args.alias or s.model_alias
    reg = _registry(s)
    reason = (args.override_reason or "").strip() or None
    overridden: list[str] = []
    if args.require_no_worse:
        from spamq.models.registry import RegistryError

        try:
            current = reg.resolve(args.name, alias)
        except RegistryError:
            current = None  # nothing to compare with: the first promotion passes
        if current is not None and current != args.version:
            candidate = reg.pull(args.name, args.version, cache_dir=s.model_cache_dir)
            against = reg.pull(args.name, current, cache_dir=s.model_cache_dir)
            rows, table = _gate(s, candidate, against, data=args.data, files=args.file,
                                json_out=args.json, feedback=args.feedback,
                                feedback_holdout=args.feedback_holdout)
            print(table)
            overridden = [f"{r['set']} {r['metric']}" for r in rows if r["worse"]]
            if overridden and not reason:
                print(f"refusing to promote {args.name}/{args.version} to {alias}: worse than "
                      f"{current} beyond its 95% bootstrap interval on "
                      f"{', '.join(overridden)} (--override-reason to promote anyway)",
                      file=sys.stderr)
                return 2
            if overridden:
                print(f"promoting despite {', '.join(overridden)}: {reason}", file=sys.stderr)
    if reason:
        reg.promote(args.name, args.version, alias=alias, override_reason=reason,
                    overridden=overridden)
    else:
        reg.promote(args.name, args.version, alias=alias)
    print(f"{args.name}/{alias} -> {args.version}")
    return 0


@_guard
def models_pull(args: argparse.Namespace) -> int:
    s = _settings(args)
    ref = args.version or args.alias or s.model_alias
    cache = Path(args.cache_dir) if args.cache_dir else s.model_cache_dir
    print(_registry(s).pull(args.name, ref, cache_dir=cache))
    return 0


@_guard
def models_shadow(args: argparse.Namespace) -> int:
    """Start a shadow (CANDIDATE), end it (``stop``), or print the running one (no argument)."""
    import time

    from spamq.models import shadow
    from spamq.redis_client import redis_client

    s = _settings(args)
    client = redis_client(s)
    if args.candidate is None:
        state = shadow.read_state(client)
        print(state.to_json() if state else "no shadow running")
        return 0
    if args.candidate == "stop":
        state = shadow.clear_state(client)
        print(f"shadow of {state.model}/{state.version} stopped (started_at "
              f"{state.started_at})" if state else "no shadow was running")
        return 0
    name = args.name or s.model_name
    reg = _registry(s)
    version = reg.resolve_ref(name, args.candidate)  # a version of this model, or refused
    from spamq.models.registry import RegistryError

    try:
        current = reg.resolve(name, s.model_alias)
    except RegistryError:
        current = None  # no production alias yet: nothing to compare with, but allowed
    if current == version:
        return _fail(ValueError(f"{name}/{version} is {s.model_alias} already: nothing to "
                                "shadow"))
    state = shadow.check_state(name, version, args.sample, time.time())
    shadow.write_state(client, state)
    print(state.to_json())
    return 0


@_guard
def models_shadow_report(args: argparse.Namespace) -> int:
    """Agreement, flips, histograms (PNG) and feedback since the start, into a folder."""
    from collections import Counter
    from datetime import UTC, datetime

    from spamq.jobs.store import JobStore
    from spamq.models import shadow
    from spamq.storage.artifacts import artifact_store_from_settings

    s = _settings(args)
    jobs = JobStore.from_settings(s)
    state = shadow.read_state(jobs.redis)
    version, started = args.candidate, args.since
    if version is None and state is None:
        return _fail(ValueError("no shadow running: name a past one with --candidate and "
                                "--since"))
    if version is None:
        assert state is not None
        version, started = state.version, started or datetime.fromtimestamp(state.started_at, UTC)
    running = state is not None and state.version == version
    store = artifact_store_from_settings(s)
    table = shadow.read_rows(store, s.shadow_root, version, since=started)
    summary = shadow.summarize(table)
    out = Path(args.out or Path("reports") / f"shadow-{version[:12]}")
    out.mkdir(parents=True, exist_ok=True)
    png = shadow.histogram_png(summary, out / "scores.png", title=f"shadow of {version[:12]}")
    report: dict[str, Any] = {
        "candidate": version, "started_at": started.isoformat() if started else None,
        "sample": state.sample if running and state else None, "running": running,
        "shadow": summary, "histogram_png": str(png),
        "workers": {w["name"]: w["shadow"] for w in jobs.workers.heartbeats()
                    if (w.get("shadow") or {}).get("version") == version},
    }
    if args.feedback:
        from spamq.feedback.store import read_feedback, text_sha256
        from spamq.training.evaluation import ModelScorer, feedback_comparison
        from spamq.training.feedback import parse_source

        try:
            source = parse_source(args.feedback)
        except ValueError as exc:
            return _fail(exc)
        if source.path is not None:
            return _fail(ValueError("--feedback: tenants=<key id>,... (the keys' feedback "
                                    "received since the shadow began)"))
        fb = read_feedback(store, list(source.tenants), since=started, root=s.feedback_root)
        texts = fb["text"].to_pylist()
        name = args.name or s.model_name
        production = args.against or (Counter(summary["production_versions"]).most_common(1)[0][0]
                                      if summary["production_versions"] else s.model_alias)
        models = {role: ModelScorer(_model_dir(s, ref, name))
                  for role, ref in (("production", production), ("candidate", version))}
        report["feedback"] = {"tenants": list(source.tenants), **feedback_comparison(
            texts, [int(x == "spam") for x in fb["label"].to_pylist()],
            [text_sha256(t) for t in texts], set(table["text_sha256"].to_pylist()), models)}
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(shadow.format_report(report))
    print(json.dumps(report, indent=2, sort_keys=True))
    print(f"report: {out}", file=sys.stderr)
    return 0


def _sample(value: str) -> float:
    x = float(value)
    if not 0.0 < x <= 1.0:
        raise argparse.ArgumentTypeError(f"a share in (0, 1], not {value}")
    return x


def _since(value: str) -> Any:
    from datetime import UTC, datetime

    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("an ISO time, e.g. 2026-12-07T21:00:00+00:00") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _reason(value: str) -> str:
    if not value.strip() or len(value) > 1000 or not value.isprintable():
        raise argparse.ArgumentTypeError("a reason of 1 to 1000 printable characters")
    return value.strip()


def _share(value: str) -> float:
    x = float(value)
    if not 0.0 < x < 1.0:
        raise argparse.ArgumentTypeError(f"a share in (0, 1), not {value}")
    return x


def _gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feedback", default=None, metavar="tenants=ID,ID | PATH",
                   help="evaluate on the newest --feedback-holdout share of this feedback "
                        "(as `spamq train --feedback`); default: the candidate's own held-out "
                        "feedback, when it was trained with some")
    p.add_argument("--feedback-holdout", type=_share, default=0.2,
                   help="with --feedback: the newest share evaluated (default 0.2)")
    p.add_argument("--data", type=Path, default=None,
                   help="the UCI TSV the test split is cut from (default: settings.data_path)")
    p.add_argument("--file", type=Path, action="append", default=[],
                   help="another labelled TSV (label, [category,] text columns); repeatable")
    p.add_argument("--json", type=Path, default=None, help="also write every figure here")


def _add_shadow_parsers(sub: argparse._SubParsersAction) -> None:
    """`models shadow` and `models shadow-report`."""
    shadow = sub.add_parser(
        "shadow", help="score a sample of live traffic with a candidate version beside "
                       "production (workers follow it within a heartbeat); 'stop' ends it")
    shadow.add_argument("candidate", nargs="?",
                        help="a registry version or alias of the model, or 'stop'; none: "
                             "print the running shadow")
    shadow.add_argument("--sample", type=_sample, default=0.1,
                        help="share of texts (by text hash: a text is always in or out) "
                             "scored by the candidate (default 0.1)")
    shadow.add_argument("--name", help="model name (default: settings.model_name)")
    shadow.set_defaults(func=models_shadow)

    report = sub.add_parser(
        "shadow-report", help="the shadow's agreement with production, label flips, score "
                              "histograms (PNG) and both models on feedback received since")
    report.add_argument("--out", help="report folder (default: reports/shadow-<version>)")
    report.add_argument("--feedback", metavar="tenants=ID,ID",
                        help="also score these keys' feedback received since the shadow began "
                             "with both versions")
    report.add_argument("--against", help="the production version to compare on feedback "
                                          "(default: the one the shadow ran beside)")
    report.add_argument("--candidate", help="a past (stopped) shadow's version (with --since)")
    report.add_argument("--since", type=_since, help="with --candidate: when it began")
    report.add_argument("--name", help="model name (default: settings.model_name)")
    report.set_defaults(func=models_shadow_report)


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="push, list, promote and pull model versions")
    sub = p.add_subparsers(dest="models_command", required=True)

    push = sub.add_parser("push", help="upload a model directory (with manifest.json) as a version")
    push.add_argument("dir")
    push.add_argument("--name", help="model name (default: settings.model_name)")
    push.add_argument("--alias", help="also point this alias at the pushed version")
    push.add_argument(
        "--verify-hashes", action="store_true", help="read every file back and hash it"
    )
    push.set_defaults(func=models_push)

    ls = sub.add_parser("list", help="versions and aliases of a model")
    ls.add_argument("name", nargs="?", help="model name (default: settings.model_name)")
    ls.set_defaults(func=models_list)

    show = sub.add_parser("show", help="a version's provenance, feedback and promotions "
                          "(with gate override reasons)")
    show.add_argument("version", help="a version id or alias")
    show.add_argument("--name", help="model name (default: settings.model_name)")
    show.set_defaults(func=models_show)

    promote = sub.add_parser("promote", help="point an alias at a version")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--alias", help="default: settings.model_alias")
    promote.add_argument(
        "--require-no-worse", action="store_true",
        help="evaluate the version and the alias's current version on every set (UCI test, "
             "data/modern/eval.tsv, each --file) and refuse (exit 2) when any figure of the "
             "version is worse beyond the current one's 95%% bootstrap interval (the sets "
             "include the candidate's held-out feedback, or --feedback's)")
    promote.add_argument(
        "--override-reason", type=_reason, default=None,
        help="promote even when --require-no-worse finds a figure worse; the reason is kept "
             "with the version in the registry (models list / show print it)")
    _gate_arguments(promote)
    promote.set_defaults(func=models_promote)

    evaluate = sub.add_parser(
        "evaluate", help="score a model on every evaluation set, side by side with another")
    evaluate.add_argument("candidate", help="a model directory, or a registry version or alias")
    evaluate.add_argument("--against", help="a registry alias or version, or a model directory")
    evaluate.add_argument("--name", help="registry model name (default: settings.model_name)")
    _gate_arguments(evaluate)
    evaluate.set_defaults(func=models_evaluate)

    _add_shadow_parsers(sub)

    pull = sub.add_parser(
        "pull", help="download and verify a version into the cache; prints its path"
    )
    pull.add_argument("name")
    pull.add_argument("version", nargs="?")
    pull.add_argument("--alias", help="default: settings.model_alias when no version is given")
    pull.add_argument("--cache-dir", help="default: settings.model_cache_dir")
    pull.set_defaults(func=models_pull)
    return p


# --- secrets --------------------------------------------------------------------------------


def _admin_client(s: Settings) -> Any:
    import hvac

    from spamq.secrets.sources import SecretError

    if not s.vault_addr or not s.vault_token:
        raise SecretError("secrets bootstrap needs SPAMQ_VAULT_ADDR and an admin SPAMQ_VAULT_TOKEN")
    return hvac.Client(
        url=s.vault_addr, token=s.vault_token.get_secret_value(), timeout=s.vault_timeout_s
    )


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)


@_guard
def secrets_bootstrap(args: argparse.Namespace) -> int:
    import hvac.exceptions
    import requests

    from spamq.secrets.sources import (
        SECRET_PATHS,
        SERVICES,
        SecretError,
        bootstrap_vault,
        mint_secret_id,
    )

    s = _settings(args)
    values: dict[str, str] = {}
    for name in SECRET_PATHS:  # what the current settings know ...
        v = getattr(s, name, None)
        if v is None or v == "":
            continue
        values[name] = v.get_secret_value() if hasattr(v, "get_secret_value") else str(v)
    for item in args.set or []:  # ... overridden by --set name=value
        name, sep, value = item.partition("=")
        if not sep or name not in SECRET_PATHS:
            raise SecretError(
                f"--set {name!r}: expected NAME=VALUE with NAME in {sorted(SECRET_PATHS)}"
            )
        values[name] = value
    client = _admin_client(s)
    try:
        role_ids = bootstrap_vault(
            client,
            values,
            mount=s.vault_mount,
            prefix=s.vault_path_prefix,
            token_ttl=args.token_ttl,
            token_max_ttl=args.token_max_ttl,
        )
        out: dict[str, Any] = {"role_ids": role_ids, "secrets_written": sorted(values)}
        if args.mint_secret_ids:
            out["secret_ids"] = {svc: mint_secret_id(client, svc) for svc in SERVICES}
        if args.approle_dir:  # for containers: each service mounts only its own folder
            for svc in SERVICES:
                _write_private(Path(args.approle_dir) / svc / "role_id", role_ids[svc])
                _write_private(Path(args.approle_dir) / svc / "secret_id",
                               mint_secret_id(client, svc))
            out["approle_dir"] = args.approle_dir
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SecretError(
            f"bootstrap against {s.vault_addr} failed: {type(exc).__name__}: {exc}"
        ) from exc
    print(json.dumps(out, indent=2))
    return 0


@_guard
def secrets_check(args: argparse.Namespace) -> int:
    from spamq.secrets.sources import SECRET_PATHS, SecretError, secret_source_from_settings

    source = secret_source_from_settings(_settings(args), service=args.service)
    ok, reason = source.ready()
    print(f"ready: {ok} ({reason})")
    for name in sorted(SECRET_PATHS):
        try:
            source.get(name)
            print(f"  {name}: readable")
        except SecretError as exc:
            print(f"  {name}: {exc}")
    return 0 if ok else 1


def add_secrets_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("secrets", help="Vault policies, AppRoles and secrets")
    sub = p.add_subparsers(dest="secrets_command", required=True)

    boot = sub.add_parser("bootstrap", help="write policies, AppRoles and secrets (admin token)")
    boot.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="a secret value (repeatable)"
    )
    boot.add_argument("--token-ttl", default="1h")
    boot.add_argument("--token-max-ttl", default="24h")
    boot.add_argument(
        "--mint-secret-ids", action="store_true", help="also print a new secret_id per role"
    )
    boot.add_argument(
        "--approle-dir", help="write DIR/<service>/{role_id,secret_id} (mode 600) per service"
    )
    boot.set_defaults(func=secrets_bootstrap)

    check = sub.add_parser(
        "check", help="can this service read its secrets? (names only, never values)"
    )
    check.add_argument("--service", choices=["api", "worker", "operator"], default="api")
    check.set_defaults(func=secrets_check)
    return p


# --- keys -----------------------------------------------------------------------------------


def _key_admin(args: argparse.Namespace) -> Any:
    from spamq.secrets.api_keys import KeyAdmin
    from spamq.secrets.sources import SecretError, VaultSecretSource, secret_source_from_settings

    source = secret_source_from_settings(_settings(args), service="operator")
    if not isinstance(source, VaultSecretSource):
        raise SecretError("spamq keys manages the keys in Vault: set SPAMQ_VAULT_ADDR and an "
                          "operator token or AppRole (SPAMQ_VAULT_ROLE_ID/SECRET_ID)")
    return KeyAdmin(source)


@_guard
def keys_issue(args: argparse.Namespace) -> int:
    issued = _key_admin(args).issue(args.name)
    print(issued.key)  # the only time the key is shown: Vault keeps its hash
    print(f"issued key id {issued.key_id}" + (f" ({issued.name})" if issued.name else "")
          + "; store the key now, it is not shown again", file=sys.stderr)
    return 0


@_guard
def keys_revoke(args: argparse.Namespace) -> int:
    removed = _key_admin(args).revoke(args.key_id)
    print(f"revoked {args.key_id} ({removed} key{'s' if removed != 1 else ''})")
    return 0


@_guard
def keys_list(args: argparse.Namespace) -> int:
    for kid, name in _key_admin(args).list():
        print(f"{kid}\t{name or ''}".rstrip())
    return 0


def add_keys_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("keys", help="issue, revoke and list API keys (hashes in Vault)")
    sub = p.add_subparsers(dest="keys_command", required=True)
    issue = sub.add_parser("issue", help="make a new key; prints it once (Vault keeps its hash)")
    issue.add_argument("--name", help="a label shown by `keys list`")
    issue.set_defaults(func=keys_issue)
    revoke = sub.add_parser("revoke", help="remove a key by its id (16 hex digits)")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=keys_revoke)
    ls = sub.add_parser("list", help="key ids and names (never keys)")
    ls.set_defaults(func=keys_list)
    secret = sub.add_parser("webhook-secret", help="show a key's webhook signing secret "
                            "(made if it has none); --rotate: a new one, the old one still "
                            "signing for webhook_secret_overlap_s")
    secret.add_argument("key_id")
    secret.add_argument("--rotate", action="store_true")
    secret.set_defaults(func=keys_webhook_secret)
    return p


# --- webhooks (issue 15) --------------------------------------------------------------------


@_guard
def keys_webhook_secret(args: argparse.Namespace) -> int:
    from spamq.webhooks.secrets import WebhookSecretAdmin

    admin = WebhookSecretAdmin(_key_admin(args),
                               overlap_s=_settings(args).webhook_secret_overlap_s)
    print(admin.show(args.key_id, rotate=args.rotate))  # stdout only: for the key's owner
    print(f"webhook secret of key {args.key_id}" + (" rotated; the previous one signs too for "
          f"{_settings(args).webhook_secret_overlap_s:.0f}s" if args.rotate else ""),
          file=sys.stderr)
    return 0


def _outbox(args: argparse.Namespace) -> Any:
    from spamq.secrets.service import load_service_secrets
    from spamq.webhooks.outbox import Outbox

    return Outbox.from_settings(load_service_secrets(_settings(args), service="operator").settings)


@_guard
def webhooks_resend(args: argparse.Namespace) -> int:
    from spamq.jobs.schema import EventNotFound

    try:
        resent = _outbox(args).resend(args.event_id)
    except EventNotFound:
        return _fail(ValueError(f"{args.event_id!r} is not an event id (msg_ + 32 hex digits)"))
    if not resent:
        return _fail(ValueError(f"{args.event_id} is not in the dead letters"))
    print(f"resent {args.event_id}")
    return 0


@_guard
def webhooks_dead(args: argparse.Namespace) -> int:
    for row in _outbox(args).dead(args.limit):
        print(json.dumps(row, sort_keys=True))
    return 0


@_guard
def webhooks_deliver(args: argparse.Namespace) -> int:
    from spamq.webhooks.__main__ import main

    return main()


def add_webhooks_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("webhooks", help="the webhook deliverer; dead letters: list and "
                              "resend")
    sub = p.add_subparsers(dest="webhooks_command", required=True)
    deliver = sub.add_parser("deliver", help="run the webhook deliverer and job watch (as "
                             "`python -m spamq.webhooks`; stops on SIGTERM)")
    deliver.set_defaults(func=webhooks_deliver)
    resend = sub.add_parser("resend", help="put a dead letter back in the outbox (same id)")
    resend.add_argument("event_id")
    resend.set_defaults(func=webhooks_resend)
    dead = sub.add_parser("dead", help="the dead letters, newest first (JSON lines)")
    dead.add_argument("--limit", type=int, default=100)
    dead.set_defaults(func=webhooks_dead)
    return p
