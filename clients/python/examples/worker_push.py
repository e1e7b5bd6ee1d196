#!/usr/bin/python3
"""A classifier worker: labels sessions and pushes the labels to cohortd.

    worker_push.py --target 127.0.0.1:7443 --token-file ingest.token \
        sessions.jsonl

Each input line is one session as the classifier sees it:
    {"session_id": "...", "account_id": "...", "start": "2026-01-05T10:00:00Z",
     "transcript": "..."}
The "classifier" here is a stand-in keyword rule; a real worker calls its
model. Observations carry the classifier's name and version as `source`, so
a new version's labels are stored beside (not over) the old ones.
"""

import argparse
import json
import sys

from cohortd_client import Client

SOURCE = "work_mode_classifier@1"


def classify(transcript):
    """A stand-in for the real model: the session's work mode."""
    text = transcript.lower()
    if "fix" in text or "bug" in text:
        return "fix"
    if "test" in text:
        return "test"
    return "build"


def observations(lines):
    for line in lines:
        session = json.loads(line)
        yield {
            "session_id": session["session_id"],
            "account_id": session["account_id"],  # pseudonymised by cohortd
            "session_start": session["start"],
            "source": SOURCE,
            "labels": {"work_mode": classify(session.get("transcript", ""))},
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:7443")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--dataset", default="sessions")
    parser.add_argument("input", help="JSON Lines of sessions")
    args = parser.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()
    with open(args.input) as lines, Client(args.target, token) as client:
        try:
            result = client.push(observations(lines), dataset=args.dataset)
        except json.JSONDecodeError as e:
            # push() stored every line before the bad one, then re-raised.
            print(f"{args.input}: a line is not JSON ({e}); stopped there, "
                  f"{e.partial.accepted} stored, {e.partial.unchanged} "
                  f"unchanged and {len(e.partial.rejected)} rejected "
                  "before it", file=sys.stderr)
            for r in e.partial.rejected[:5]:
                print(f"  line {r.index + 1}: {r.field}: {r.reason}",
                      file=sys.stderr)
            return 2
    print(f"stored {result.accepted}, unchanged {result.unchanged}, "
          f"rejected {len(result.rejected)}")
    for r in result.rejected[:20]:
        print(f"  line {r.index + 1}: {r.field}: {r.reason}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
