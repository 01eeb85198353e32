# make demo   runs examples/contention (workers contend for a lock; one holder
#             is cut off and loses it) against a ZooKeeper it finds or starts;
#             DEMO_FLAGS passes flags to it, e.g. DEMO_FLAGS="-duration 6s"
# make test   runs every test (unit and integration, with the race detector)
# See scripts/with-zookeeper for where ZooKeeper comes from.

GO ?= go
TEST_FLAGS ?= -race -count=1 -timeout 45m

.PHONY: demo test unit lint

DEMO_FLAGS ?=

demo:
	./scripts/with-zookeeper $(GO) run ./examples/contention $(DEMO_FLAGS)

test:
	./scripts/with-zookeeper --tests $(GO) test $(TEST_FLAGS) ./...

unit:
	$(GO) test -short $(TEST_FLAGS) ./...

# Only the files that own ZooKeeper operations talk to go-zookeeper's
# connection; every other file of the root package goes through them.
ZK_CONN_FILES = generation.go request.go queue.go nodes.go

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	@bad=""; for f in $$(ls *.go | grep -v '_test\.go$$'); do \
	  case " $(ZK_CONN_FILES) " in *" $$f "*) continue;; esac; \
	  grep -q '\*zk\.Conn' $$f && bad="$$bad $$f"; \
	done; \
	test -z "$$bad" || { echo "*zk.Conn used outside $(ZK_CONN_FILES):$$bad"; exit 1; }
