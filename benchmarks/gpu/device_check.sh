set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD COURSE_DATA_DIR=${COURSE_DATA_DIR:-$PWD/.devdata} COURSE_OFFLINE=1 COURSE_CACHE_DIR=/tmp/cache
nvidia-smi -L
python3 -c "import torch, transformers, librosa, soundfile; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
echo "== 1. notebooks' loop (helpers.train.fit) on CUDA with AMP"; timeout 120 python3 benchmarks/gpu/gpu_fit_check.py 2>&1 | tail -8
echo "== 2. train_text lstm, single process, auto precision"; timeout 150 python3 -m helpers.train_text lstm --data emotion_en --epochs 8 --output $OUT/lstm --no-progress 2>&1 | tail -6; python3 -c "import json;m=json.load(open('$OUT/lstm/metrics.json'));print({k:m[k] for k in m if 'test' in k or 'precision' in k or 'device' in k})" 2>&1 | tail -3
echo "== 3. torchrun nccl, 1 process, resume"; timeout 120 torchrun --standalone --nproc_per_node 1 -m helpers.train_text lstm --data emotion_en --limit 4000 --epochs 2 --output /tmp/ddp --no-progress 2>&1 | tail -3; timeout 60 torchrun --standalone --nproc_per_node 1 -m helpers.train_text lstm --data emotion_en --limit 4000 --epochs 3 --output /tmp/ddp --resume --no-progress 2>&1 | tail -3
echo "== 4. train_audio fold 0 on GPU"; timeout 150 python3 -m helpers.train_audio --fold 0 --n-folds 4 --epochs 15 --output $OUT/audio --no-progress 2>&1 | tail -4
echo "== 5. small wav2vec2 from scratch on GPU"; W2V_EPOCHS=20 W2V_FOLDS=2 timeout 200 python3 benchmarks/gpu/w2v_gpu_check.py 2>&1 | tail -5
echo "== 6. unit tests on the GPU machine"; timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/test_distributed.py tests/test_checkpoint.py tests/test_speech.py tests/test_wav2vec.py tests/test_train.py 2>&1 | tail -4
ls -R $OUT | head
