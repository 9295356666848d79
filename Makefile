# The README's commands. `make test` is what CI runs.
.PHONY: demo test bench bench-load build

demo:
	go run ./cmd/mcpguard serve --demo

test:
	go test -race -count=1 ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...

build:
	go build -o mcpguard ./cmd/mcpguard

# Load benchmark: unsecured go-sdk server vs mcpguard variants (see bench/README.md).
bench-load:
	go run ./bench
