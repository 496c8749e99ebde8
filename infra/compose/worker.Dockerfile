# syntax=docker/dockerfile:1
# Image of the example worker (examples/demo/worker.ts), used by docker-compose and Kubernetes.
# Build from the repository root:
#   docker build -f infra/compose/worker.Dockerfile -t jetq-demo-worker .
# The examples import "jetq" by name, which package.json's exports resolve to dist: the library
# is built here (npm run build), and Node 24 runs the example's TypeScript directly.
FROM node:24-alpine
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies included: the build needs TypeScript, and the worker's Prometheus endpoint
# uses @opentelemetry/sdk-metrics and @opentelemetry/exporter-prometheus, which jetq itself does
# not depend on.
RUN npm ci --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
COPY examples ./examples
USER node
# The CLI is in the image too: docker compose exec worker node src/cli/main.ts stats thumbnails
CMD ["node", "examples/demo/worker.ts"]
