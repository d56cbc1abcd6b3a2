"""Time drain3 on one log file: header split with the logparser format
regex, the system's masks as drain3 masking instructions, default settings
otherwise, single thread. Prints lines/second."""
import json, re, sys, time
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
from drain3.masking import MaskingInstruction

def format_regex(fmt):
    parts = re.split(r"(<[^<>]+>)", fmt)
    rx = ""
    for i, p in enumerate(parts):
        if i % 2 == 0:
            rx += re.sub(" +", r"\\s+", p)
        else:
            rx += "(?P<%s>.*?)" % p.strip("<>")
    return re.compile("^" + rx + "$")

def main(path, fmt, masks):
    cfg = TemplateMinerConfig()
    cfg.masking_instructions = [MaskingInstruction(m, "*") for m in masks]
    cfg.profiling_enabled = False
    miner = TemplateMiner(config=cfg)
    rx = format_regex(fmt)
    start = time.perf_counter()
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = rx.match(line)
            content = m.group("Content") if m else line
            miner.add_log_message(content)
            n += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"lines": n, "seconds": elapsed, "clusters": len(miner.drain.clusters)}))

if __name__ == "__main__":
    settings = json.load(open("datasets/loghub-2k/settings.json"))[sys.argv[2]]
    main(sys.argv[1], settings["log_format"], settings["masks"])
