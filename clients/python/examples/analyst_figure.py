#!/usr/bin/python3
"""An analyst's figure: verified success rate by occupation with its
intervals, drawn into a PNG from one DP release.

    analyst_figure.py --target 127.0.0.1:7443 --token-file analyst.token \
        --out verified_success.png
"""

import argparse
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

from cohortd_client import Client  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:7443")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--dataset", default="sessions")
    parser.add_argument("--epsilon", type=float, default=0.0,
                        help="0: the dataset's default per query")
    parser.add_argument("--out", default="verified_success.png")
    args = parser.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()
    with Client(args.target, token) as client:
        df = client.aggregate(
            ["verified=rate:verified_success=true", "sessions"],
            dataset=args.dataset, group_by=["occupation"],
            epsilon=args.epsilon)
    if df.empty:
        print("no cohort passed the k floor and partition selection",
              file=sys.stderr)
        return 1
    df = df.dropna(subset=["verified"]).sort_values("verified")
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(df) + 1.5))
    ax.errorbar(df["verified"], df["occupation"],
                xerr=[df["verified"] - df["verified_ci_low"],
                      df["verified_ci_high"] - df["verified"]],
                fmt="o", capsize=3)
    cost = df.attrs["cost"]
    ax.set_xlabel("verified success rate")
    ax.set_title(f"Verified success by occupation ({df.attrs['confidence']:.0%}"
                 f" intervals: {df.attrs['interval'].lower()}; "
                 f"eps {cost['epsilon']:.2g})", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}: {len(df)} occupations, release "
          f"{df.attrs['release_id']}"
          + (" (from cache)" if df.attrs["from_cache"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
