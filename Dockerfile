# b24sync in a container: build with the Rust toolchain, run on a slim Debian.
# Used by docker-compose.yml; also works on its own:
#   docker build -t b24sync . && docker run --rm -e B24SYNC_DB=... -e B24SYNC_WEBHOOK=... b24sync sync

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the sources does not rebuild every crate. Cargo reads the
# whole workspace (the root package and crates/simulator) even for `--bin b24sync`, so every
# target either manifest declares needs a file: the library, the binary, the [[bench]] and
# the simulator's library get empty stand-ins here (examples/ and tests/ are not copied, so
# nothing is discovered there). A target or workspace member added to a Cargo.toml needs its
# line here too; `.ci/dockerfile-replay` (run by `.ci/run`) replays these steps and fails if not.
COPY Cargo.toml Cargo.lock ./
COPY crates/simulator/Cargo.toml ./crates/simulator/
RUN mkdir -p src benches crates/simulator/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/methods.rs \
    && echo 'fn main() {}' > benches/load.rs \
    && echo 'fn main() {}' > benches/serve.rs \
    && echo 'fn main() {}' > benches/entities.rs \
    && touch crates/simulator/src/lib.rs \
    && cargo build --release --locked --bin b24sync \
    && rm -rf src crates/simulator/src
COPY src ./src
COPY crates ./crates
COPY sql ./sql
# The dummy build above left stale crates; make sure the real sources are compiled.
RUN touch src/main.rs src/lib.rs crates/simulator/src/lib.rs \
    && cargo build --release --locked --bin b24sync

FROM debian:bookworm-slim
# CA certificates: TLS to SQL Server (when its certificate is CA-signed) and to Bitrix24.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/b24sync --create-home b24sync
COPY --from=build /src/target/release/b24sync /usr/local/bin/b24sync
# The SQL files, for a DBA who wants to read or run them by hand (fix_duplicate_leads.sql).
COPY --from=build /src/sql /usr/share/b24sync/sql
USER b24sync
WORKDIR /var/lib/b24sync
ENTRYPOINT ["/usr/local/bin/b24sync"]
CMD ["sync"]
