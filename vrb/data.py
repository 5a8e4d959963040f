"""``python -m vrb.data info|verify|download``: find, check or build the MultiWOZ data folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from envs.cli import ArgumentParser, command
from envs.multiwoz import data as mw_data
from envs.multiwoz import download as mw_download

logger = logging.getLogger(__name__)


def resolve_with_reason(explicit: str | None) -> tuple[Path, str]:
    """The data folder ``load`` would use, and the rule that chose it."""
    root = mw_data.resolve_data_dir(explicit)
    for reason, candidate in mw_data.candidate_dirs(explicit):
        if candidate.is_dir() and candidate.resolve() == root:
            return root, reason
    raise AssertionError(f"{root} is not one of the candidate data folders")


def _format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def cmd_info(args: argparse.Namespace) -> int:
    root, reason = resolve_with_reason(args.data_dir)
    print(f"data folder: {root}")
    order = f"--data-dir > ${mw_data.DATA_ENV_VAR} > beside the repository > user cache"
    print(f"chosen by:   {reason} (order: {order})")
    print("files:")
    for name in mw_data.read_checksums(root):
        path = root / name
        size = _format_size(path.stat().st_size) if path.is_file() else "MISSING"
        print(f"  {name:<45} {size:>10}")
    folder = mw_data.MultiWozData(root)
    split = folder.training_split()
    note = "" if split == "train" else " (train.json.zip is absent; val is used for training, test held out)"
    print(f"training split: {split}{note}")
    count = len(mw_data.verify(root))  # a failure is the command's error: one line on stderr, exit 2
    print(f"checksums: verified ({count} files match SHA256SUMS)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    root = mw_data.resolve_data_dir(args.data_dir)
    count = len(mw_data.verify(root))
    print(f"OK: {count} files in {root} match SHA256SUMS")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    dest = mw_download.download(args.dest, base_url=args.base_url, with_train=args.with_train)
    print(f"OK: data folder written to {dest}; use it via --data-dir or ${mw_data.DATA_ENV_VAR}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m vrb.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, summary in (
        ("info", cmd_info, "show which data folder is used, its files and the training split"),
        ("verify", cmd_verify, "re-hash every file against SHA256SUMS"),
    ):
        sub = commands.add_parser(name, help=summary)
        sub.add_argument("--data-dir", help="data folder (else $VRB_DATA_DIR, ../shared/multiwoz, cache)")
        sub.set_defaults(handler=handler)
    sub = commands.add_parser("download", help="build a data folder from ConvLab-2's repository")
    sub.add_argument("--dest", required=True, help="folder to create (must not exist yet, or be empty)")
    sub.add_argument(
        "--base-url", default=mw_download.DEFAULT_BASE_URL, help="URL that upstream paths are appended to"
    )
    sub.add_argument("--with-train", action="store_true", help="also fetch the train split (train.json.zip)")
    sub.set_defaults(handler=cmd_download)
    return parser


@command(mw_data.DataError, mw_download.DownloadError)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
