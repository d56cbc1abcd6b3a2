"""drain3 0.9.11 (default settings, the system's masks as masking
instructions, header split as bench/drain3/drain3_run.py does) on one log:
prints each line's final cluster id and template as CSV, as
`remedy templates` does, so both are scored alike."""
import csv, json, sys, os
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "drain3"))
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
from drain3.masking import MaskingInstruction
from drain3_run import format_regex


def main(path, system):
    settings = json.load(open("datasets/loghub-2k/settings.json"))[system]
    cfg = TemplateMinerConfig()
    cfg.masking_instructions = [MaskingInstruction(m, "*") for m in settings["masks"]]
    cfg.profiling_enabled = False
    miner = TemplateMiner(config=cfg)
    rx = format_regex(settings["log_format"])
    ids = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = rx.match(line.rstrip("\n"))
            content = m.group("Content") if m else line.rstrip("\n")
            ids.append(miner.add_log_message(content)["cluster_id"])
    temps = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    w = csv.writer(sys.stdout)
    w.writerow(["LineId", "EventId", "EventTemplate"])
    for i, c in enumerate(ids, 1):
        w.writerow([i, c, temps[c]])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
