# make demo   runs the demo against a ZooKeeper it finds or starts
# make test   runs every test (unit and integration, with the race detector)
# See scripts/with-zookeeper for where ZooKeeper comes from.

GO ?= go
TEST_FLAGS ?= -race -count=1 -timeout 45m

.PHONY: demo test unit lint

demo:
	./scripts/with-zookeeper $(GO) run ./examples/session

test:
	./scripts/with-zookeeper $(GO) test $(TEST_FLAGS) ./...

unit:
	$(GO) test -short $(TEST_FLAGS) ./...

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
