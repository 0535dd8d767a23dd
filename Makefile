# gavel: make demo (a meeting against a throwaway Prosody), make test.
GO      ?= go
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
BIN     := bin
# Second versions of the servers, unpacked beside the system's (deps-servers).
SERVERS := $(BIN)/servers

.PHONY: all deps deps-prosody deps-ejabberd deps-servers deps-postgres deps-systemd build demo test lint fuzz bench soak soak-short clean clients-deps clients-deps-apt test-clients

all: build

## deps: install every server the tests run against if it is missing: the
## system's Prosody 0.12, ejabberd 23.01 and PostgreSQL (apt-get), and
## Prosody 13 and ejabberd 24.12 unpacked into $(SERVERS) (deps-servers);
## and systemd-analyze, which checks packaging/systemd (deps-systemd).
deps: deps-prosody deps-ejabberd deps-servers deps-postgres deps-systemd

## deps-ejabberd: install ejabberd if it is missing (Debian/Ubuntu, apt-get).
deps-ejabberd:
	@command -v ejabberdctl >/dev/null 2>&1 || test -x /usr/sbin/ejabberdctl || { \
		echo "installing ejabberd (apt-get)"; \
		$(APT) update -qq && $(APT) install -y -qq ejabberd >/dev/null; }
	@# Debian starts system servers on install; gavel's tests run their own.
	@# (Only when it runs: ejabberdctl would start an epmd just to ask.)
	@if pgrep -f 'name [e]jabberd@localhost' >/dev/null 2>&1; then $(SUDO) service ejabberd stop >/dev/null 2>&1 || true; fi

## deps-prosody: install Prosody if it is missing (all the demo needs).
deps-prosody:
	@command -v prosody >/dev/null 2>&1 || { \
		echo "installing prosody (apt-get)"; \
		$(APT) update -qq && $(APT) install -y -qq prosody >/dev/null; }
	@$(SUDO) service prosody stop >/dev/null 2>&1 || true

## deps-servers: unpack Prosody 13 and ejabberd 24.12 from Debian's archive
## into $(SERVERS) (private: the system's versions stay), once; the version
## pins are in scripts/servers.sh.
deps-servers: deps-prosody deps-ejabberd
	@bash scripts/servers.sh $(SERVERS)

## deps-postgres: install PostgreSQL if it is missing (the shared store's tests
## run their own cluster from /usr/lib/postgresql/*/bin, on a free loopback port).
deps-postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		echo "installing postgresql (apt-get)"; \
		$(APT) update -qq && $(APT) install -y -qq postgresql >/dev/null; }
	@# Debian starts a system cluster on install; the tests start their own.
	@$(SUDO) service postgresql stop >/dev/null 2>&1 || true

## deps-systemd: install systemd-analyze if it is missing (Debian's systemd
## package; the test of packaging/systemd/gavel.service runs its verify).
deps-systemd:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		echo "installing systemd (apt-get), for systemd-analyze"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends systemd >/dev/null; }

## build: build bin/gavel.
build:
	$(GO) build -o $(BIN)/gavel ./cmd/gavel

## demo: start a throwaway Prosody and gavel on loopback and hold a meeting.
demo: deps-prosody build
	$(GO) run ./cmd/gavel-demo -gavel $(BIN)/gavel

## test: vet, then every test, the integration tests against real Prosody
## (0.12, 13) and ejabberd (23.01, 24.12) included.
test: deps clients-deps
	$(GO) vet ./...
	GAVEL_PROSODY13=$(abspath $(SERVERS))/prosody-13/usr/bin/prosody \
	GAVEL_EJABBERD24_ROOT=$(abspath $(SERVERS))/ejabberd-24 \
	$(GO) test -count=1 -timeout 30m ./...

## lint: gofmt and staticcheck.
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

## fuzz: run each fuzz target for FUZZTIME (default 20s).
FUZZTIME ?= 20s
FUZZ := auth:FuzzVerify auth:FuzzParseRoom auth:FuzzRoomMatch auth:FuzzDecodeClaims \
        api:FuzzMeetingBody component:FuzzStanza config:FuzzParse
fuzz:
	@for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$pkg $$name"; \
		$(GO) test ./$$pkg/ -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s || exit 1; \
	done

## bench: gavel against bare Prosody in the same run (joins into rooms of
## 10 and of 100, 100 joins/s, burst, arrivals with HS256 and RS256; open
## rooms and gavel's default guests: deny side by side, beside a Lua
## pre-join stand-in; a bad-token flood; recovery of 1,000 rooms after
## Prosody's and gavel's own restarts; the bridge and polling mode; two
## shards on PostgreSQL), the policy engine and token validation. BENCHFLAGS='-prosody bin/servers/prosody-13/usr/bin/prosody'
## runs it on Prosody 13; '-phases decomp' splits gavel's cost per join. Prosody is pinned to one CPU, the
## load generator and gavel to the other. Results: $(BIN)/bench/ and
## docs/BENCHMARKS.md. BENCHFLAGS adds gavel-bench flags (-h lists them).
BENCHFLAGS ?=
bench: deps-prosody deps-postgres build
	@mkdir -p $(BIN)/bench
	$(GO) run ./cmd/gavel-bench -gavel $(BIN)/gavel -json $(BIN)/bench/results.json -markdown $(BIN)/bench/results.md $(BENCHFLAGS)
	$(GO) test ./policy/ -run '^$$' -bench . -benchmem -cpu 1
	$(GO) test ./auth/ -run '^$$' -bench 'BenchmarkVerify$$' -benchtime 1s

## soak: the full fault suite against real Prosody (cmd/gavel-soak: Prosody
## restarted 100 times, kill -9 after acknowledged bans, gavel restarted
## under occupied rooms, churn, a 60 s outage); about 7 minutes. Writes
## docs/RELIABILITY.md. SOAKFLAGS adds gavel-soak flags (-h lists them).
SOAKFLAGS ?=
soak: deps-prosody build
	@mkdir -p $(BIN)/soak
	$(GO) run ./cmd/gavel-soak -gavel $(BIN)/gavel -dir $(BIN)/soak/full -markdown docs/RELIABILITY.md $(SOAKFLAGS)

## soak-short: the same suite scaled down (CI); report in $(BIN)/soak/short.md.
soak-short: deps-prosody build
	@mkdir -p $(BIN)/soak
	$(GO) run ./cmd/gavel-soak -short -gavel $(BIN)/gavel -dir $(BIN)/soak/short -markdown $(BIN)/soak/short.md $(SOAKFLAGS)

clean:
	rm -rf $(BIN) .demo

## clients-deps: what the client tests (clients/) need: Node.js and npm,
## Chromium and Python's slixmpp from Debian if missing, then clients/js's
## packages from its package-lock.json (npm ci, only when the lock changed).
CLIENTS_JS := clients/js
clients-deps: clients-deps-apt $(CLIENTS_JS)/node_modules/.package-lock.json

clients-deps-apt:
	@missing=""; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || missing="$$missing python3-slixmpp"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt-get)"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(CLIENTS_JS)/node_modules/.package-lock.json: $(CLIENTS_JS)/package-lock.json | clients-deps-apt
	cd $(CLIENTS_JS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## test-clients: only the client tests (JavaScript, Python, the web page and
## the admin console in Chromium).
test-clients: deps-prosody clients-deps
	$(GO) test -count=1 -v -run 'TestJS|TestPython|TestWeb|TestConsole' ./clients/
