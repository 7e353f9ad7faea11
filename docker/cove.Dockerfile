# cove itself in an image FROM scratch: one static binary (musl), for the
# init containers that wait for a service's dependencies in a cluster
# (`cove k8s render`: Options.cove_image). Built from the repository's root:
#
#   docker build -f docker/cove.Dockerfile -t HOST/PREFIX/cove:VERSION .
#   docker push HOST/PREFIX/cove:VERSION
#
# The build stage is Alpine's Rust, where musl is the native C library, so
# no extra rustup target is needed and the result has no interpreter
# (PT_INTERP) and no shared library to find.
#
# Status: NOT BUILT on the machine this was written on: its engine cannot
# reach Docker Hub (no `rust:*-alpine` image), and its toolchain has no musl
# target (`rustup target list --installed`: x86_64-unknown-linux-gnu only).
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cove \
 && strip target/release/cove \
 && cp target/release/cove /cove

FROM scratch
COPY --from=build /cove /cove
ENTRYPOINT ["/cove"]
