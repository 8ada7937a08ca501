# Dataflow worker image (custom SDK container): the pinned stack preinstalled, so workers start in seconds
# instead of installing TensorFlow at every start. Pass it with --parameters sdk_container_image=WORKER_IMAGE.
# Build from the project root:
#   CPU: docker build -f templates/dataflow/worker.Dockerfile -t WORKER_IMAGE .
#   GPU: docker build -f templates/dataflow/worker.Dockerfile --build-arg GPU=1 -t WORKER_IMAGE_GPU .
# The Beam version of the base image must equal the pinned apache-beam.
FROM apache/beam_python3.11_sdk:2.77.0

ARG GPU=0
ARG TFHUB_CACHE_DIR=
ENV TFHUB_CACHE_DIR=${TFHUB_CACHE_DIR}

COPY templates/dataflow/requirements.txt /opt/job/requirements.txt
COPY setup.py /opt/job/setup.py
COPY pipeline/ /opt/job/pipeline/
COPY transforms/ /opt/job/transforms/

# GPU=1 adds TensorFlow's CUDA libraries (pip wheels) at the pinned TensorFlow version; Dataflow installs
# the NVIDIA driver on the VM (install-nvidia-driver).
RUN pip install --no-cache-dir -r /opt/job/requirements.txt \
    && if [ "$GPU" = 1 ]; then pip install --no-cache-dir 'tensorflow[and-cuda]' -c /opt/job/requirements.txt; fi \
    && pip install --no-cache-dir --no-deps /opt/job
