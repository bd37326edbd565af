"""`rlpad <stage>`: the one entry point the numbered scripts (and the image) call.

The command line is the whole configuration: profile + `--set key=value` overrides
make a typed Config, which the stage's manifest records verbatim.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .config import ConfigError, load_config
from .store import Store, StoreError, validate_run_id
from .store.status import fail_running

STAGE_COMMANDS = {  # command -> (module, help)
    "fit": ("fit", "stage 1: fit the profile's learner (DQN, Double DQN, Split-Q); keep its Q-net and replay memory"),
    "transform": ("transform", "stage 2: cut the Q-net and embed every transition of the dataset (replay or the agent's own play)"),
    "fit-gan": ("fitgan", "stage 3: fit a conditional GAN on the embeddings"),
    "eval": ("evaluate", "stage 4: the padded-refit trial grid on Spark, with win statistics"),
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="./artifacts",
                   help="artifact store URI: a folder or gs://bucket/prefix (default ./artifacts)")
    p.add_argument("--run", default="default", help="run id: artifacts go to <store>/<run>/")
    p.add_argument("--profile", default="quick", help="profile name (profiles/<name>.toml) or path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. --set dqn.total_steps=2000 (repeatable)")
    p.add_argument("--force", action="store_true", help="redo the stage even if it is complete")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rlpad", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, (_, help_) in STAGE_COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        _common(p)
        # Spark: stage 4's grid, and stages 1-3 of a study's agents on a cluster master
        g = p.add_argument_group("Spark (config.sh: RLPAD_SPARK_*)")
        g.add_argument("--master", default="local[*]",
                       help="local[*], local[N,F], spark://host:port or k8s://https://host:port")
        g.add_argument("--executors", type=int, default=2, help="cluster masters: executors")
        g.add_argument("--executor-cores", type=int, default=1)
        g.add_argument("--executor-memory", default="3g")
        g.add_argument("--driver-memory", default="")
        g.add_argument("--image", default="", help="k8s: the rlpad CPU image")
        g.add_argument("--namespace", default="default", help="k8s namespace")
        g.add_argument("--service-account", default="spark", help="k8s driver service account")
        g.add_argument("--submit", action="store_true",
                       help="launch through spark-submit (spark:// client mode, k8s:// cluster "
                            "mode) instead of running the driver in this process")
    p = sub.add_parser("config", help="print the resolved config of a profile as JSON")
    _common(p)
    p = sub.add_parser("export", help="write an agent's data in another tool's format")
    p.add_argument("format", choices=["minari"], help="minari: Farama Minari datasets (HDF5)")
    _common(p)
    p.add_argument("--agent", type=int, default=None, metavar="SEED",
                   help="one agent of a study (default: every agent of the run)")
    p.add_argument("--dataset", default="replay",
                   help="comma-separated: replay (stage 1), policy (stage 2's recorded play), "
                        "embedded (stage 2's e(s) episodes); default replay")
    p.add_argument("--out", default=None, help="datasets folder (default: minari's, "
                   "MINARI_DATASETS_PATH or ~/.minari/datasets)")
    p = sub.add_parser("dashboard", help="serve a read-only web app over a store: runs, "
                                         "stages, studies, comparisons")
    p.add_argument("--store", default="./artifacts", help="the store to show (a folder or gs://)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--poll", type=float, default=5.0, metavar="S",
                   help="seconds between a page's checks for changes (default 5)")
    p.add_argument("--stall-after", type=float, default=None, metavar="S",
                   help="a running stage whose heartbeat is older than this is stalled "
                        "(default: 3 heartbeats, at least 30 s)")
    p = sub.add_parser("play", help="a stored agent plays greedily; GIFs of its episodes "
                                    "with their scores go to the store (<run>/play/)")
    _common(p)
    p.add_argument("--agent", type=int, default=None, metavar="SEED",
                   help="one agent of a study (default: every agent of the run)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=0, help="cut an episode after this many "
                   "agent steps (0: play it to its end)")
    p.add_argument("--fps", type=int, default=30)
    return ap


def _resubmit_args(argv: list[str] | None) -> list[str]:
    """This command line without --submit: what the submitted driver runs."""
    return [a for a in (sys.argv[1:] if argv is None else argv) if a != "--submit"]


def main(argv: list[str] | None = None) -> int:
    argv_ = sys.argv[1:] if argv is None else argv
    if argv_ and argv_[0] in ("driver", "executor"):  # a Spark-on-Kubernetes pod (see spark/launch.py)
        from .spark import k8s_role_command

        cmd = k8s_role_command(argv_[0], argv_[1:], os.environ)
        os.execvp(cmd[0], cmd)  # java is looked up on PATH without JAVA_HOME
    args = build_parser().parse_args(argv)
    import logging

    # gcsfs logs a full traceback for every exhausted retry; the store turns those into
    # one clear error, printed below.
    logging.getLogger("gcsfs").setLevel(logging.CRITICAL)
    try:
        if args.command == "dashboard":
            if not 0 < args.port < 65536 or args.poll <= 0:
                raise ValueError("--port must be 1-65535 and --poll > 0")
            from .dashboard import serve

            serve(args.store, args.host, args.port, args.poll, args.stall_after)
            return 0
        cfg = load_config(args.profile, args.overrides)
        if args.command == "config":
            print(json.dumps(cfg.to_dict(), indent=1))
            return 0
        validate_run_id(args.run)
        store = Store(args.store)
        if args.command == "export":
            from .stages.export import export_minari

            export_minari(cfg, store, args.run, args.agent,
                          tuple(d.strip() for d in args.dataset.split(",") if d.strip()),
                          args.out, force=args.force)
            return 0
        if args.command == "play":
            from .stages.watch import play_agents

            if args.episodes < 1 or args.max_steps < 0 or args.fps < 1:
                raise ValueError("--episodes and --fps must be >= 1, --max-steps >= 0")
            play_agents(cfg, store, args.run, args.agent, args.episodes, args.max_steps, args.fps)
            return 0
        from .spark import SparkSettings, spark_submit_command

        settings = SparkSettings(
            master=args.master, executors=args.executors, executor_cores=args.executor_cores,
            executor_memory=args.executor_memory, driver_memory=args.driver_memory,
            image=args.image, namespace=args.namespace, service_account=args.service_account)
        master = settings.validate()
        if args.submit:
            if master.kind == "spark":  # seconds, not spark-submit's minute of retries
                from .spark import probe_master

                probe_master(master, settings.connect_timeout_s)
            cmd = spark_submit_command(settings, _resubmit_args(argv))
            print(f"rlpad {args.command}: submitting:", " ".join(cmd), file=sys.stderr)
            import subprocess

            return subprocess.call(cmd)
        if args.command == "eval":
            from .stages import evaluate

            evaluate.run(cfg, store, args.run, force=args.force, spark_settings=settings)
            return 0
        from .stages.agents import run_all

        run_all(args.command, cfg, store, args.run, args.force, settings)
        return 0
    except (ConfigError, StoreError, ValueError, FileNotFoundError, FileExistsError) as e:
        fail_running(e)
        print(f"rlpad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        fail_running(e)
        if not type(e).__module__.startswith("rlpad."):
            raise  # someone else's failure: keep its traceback
        print(f"rlpad {args.command}: error: {e}", file=sys.stderr)  # ours: Spark, trials, GAN
        return 2
    except BaseException as e:  # a bug or Ctrl-C: the status says so, the traceback stays
        fail_running(e)
        raise


if __name__ == "__main__":
    sys.exit(main())
