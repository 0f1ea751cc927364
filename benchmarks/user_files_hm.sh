#!/usr/bin/env bash
# The README's "From your own files" path on the raw H&M files, every step timed with /usr/bin/time.
#   flock /tmp/lgrec-bench.lock bash benchmarks/user_files_hm.sh ../shared/data/hm ../shared/models /tmp/shop \
#       > benchmarks/results/user_files_hm.txt 2>&1
set -euo pipefail
RAW=$(realpath "$1"); MODELS=$(realpath "$2"); WORK=$3
RESULTS=$(realpath "$(dirname "$0")")/results
mkdir -p "$WORK" && cd "$WORK"
step() { echo "== $*"; /usr/bin/time -f "   [time] %e s wall, %U s user, %S s sys, %M KB max RSS" "$@"; }
lscpu | grep -E "^(Model name|CPU\(s\))" ; python -c "import lgrec; print('lgrec', lgrec.__version__)"
step lgrec prepare "$RAW/transactions.csv" --user customer_id --item article_id --time t_dat --split temporal \
    --images "$RAW/images/{item:.3}/{item}.jpg" --texts "$RAW/articles.csv" \
    --text-col prod_name --text-col product_type_name --text-col colour_group_name \
    --text-col graphical_appearance_name --text-col section_name --text-col detail_desc \
    --title-col prod_name --models "$MODELS" --quiet --out data
step lgrec fit data --model rlmm --save rlmm.npz --quiet
CUSTOMER=$(sed -n 2p data/u_id_mapping.csv | cut -d, -f1)
ARTICLES=$(python -c "import pandas as pd; i = pd.read_csv('data/item_info.csv', dtype=str); print(','.join(i[i.has_image == '1'].item_id[:3]))")
step lgrec recommend rlmm.npz data --users "$CUSTOMER" --k 5
step lgrec recommend rlmm.npz data --items "$ARTICLES" --k 5
step lgrec recommend rlmm.npz data --all --k 10 --out recs.csv
head -4 recs.csv
step lgrec report rlmm.npz data --out report.html --users 5
if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
        --no-first-run --hide-scrollbars --screenshot="$RESULTS/report_hm.png" --window-size=1400,2200 \
        "file://$PWD/report.html" 2>/dev/null
fi
ls -la report.html recs.csv
