#!/bin/bash
# 50 learners, tiny model, 3 rounds: flops train-local then bare Flower; sample RSS of learner processes.
cd "$(dirname "$0")/.."
sample() { while kill -0 $1 2>/dev/null; do ps -eo pid,rss,args | grep -E "$2" | grep -v grep | awk '{print $1, $2}' >> $3; sleep 2; done; }
uptime
w=$(mktemp -d /tmp/perf50-XXXX)
s=$(date +%s.%N)
timeout 480 .venv/bin/flops train-local bench/tiny_repo --learners 50 --rounds 3 --workdir $w --timeout 450 --json > /tmp/perf50_flops.out 2>&1 &
p=$!; sample $p "learner_base|flops-learner" /tmp/perf50_flops.rss; wait $p; echo "flops rc=$? wall $(echo "$(date +%s.%N) - $s" | bc) s"
tail -1 /tmp/perf50_flops.out | cut -c1-200
s=$(date +%s.%N)
timeout 480 .venv/bin/python bench/bare_flower.py --learners 50 --rounds 3 > /tmp/perf50_bare.out 2>&1 &
p=$!; sample $p "bare_flower" /tmp/perf50_bare.rss; wait $p; echo "bare rc=$? wall $(echo "$(date +%s.%N) - $s" | bc) s"
tail -2 /tmp/perf50_bare.out | cut -c1-200
uptime
rm -rf $w
