# -*- coding: utf-8 -*-
"""The inodes check (the study's Table 2): a container creates very many empty files, a
thousand to a folder."""

from __future__ import absolute_import, division, print_function

from .consts import MIB
from .container import BIG_COUNT, COUNT_FILE, hold_script
from .resdisk import Disk
from .resfs import FsResource
from .text import fmt_count
from .verdicts import host_effect, own_fs_words, ratio_text


class Inodes(FsResource):
    """Inodes of the filesystem that holds the docker root."""

    name = "inodes"
    free_key = "free_inodes"
    free_before_key = "host_free_inodes_before"
    host_prefix = "host_free_inodes"
    series_keys = ("free_inodes", "free_bytes")
    before_keys = (("host_free_inodes_before", "free_inodes"),
                   ("host_inodes_total", "inodes_total"),
                   ("host_free_bytes_before", "free_bytes"))
    cap_key, cap_fraction_key = "inodes_cap", "inodes_cap_fraction"
    floor_key, floor_fraction_key = "inodes_floor", "inodes_floor_fraction"
    progress_key = "files_created"
    rate_key = "create_rate_per_s"
    ratio_definition = ("the fall of the host filesystem's free inodes at the container's peak "
                        "/ the files and folders the container created")

    def script(self, amount, sleep_s, soak_s=0):
        n = BIG_COUNT if amount is None else int(amount)
        return ("mkdir /fill || exit 1; i=0; d=0; j=0; "
                "while [ $i -lt %d ]; do "
                "if [ $((i %% 1000)) -eq 0 ]; then p=/fill/d$d; mkdir $p || break; "
                "d=$((d+1)); fi; "
                "k=$((%d - i)); if [ $k -gt 100 ]; then k=100; fi; j=0; "
                "while [ $j -lt $k ]; do true > $p/f$i-$j || break 2; j=$((j+1)); done; "
                "i=$((i+j)); j=0; echo $i > %s; "
                "done; i=$((i+j)); "  # a broken inner loop left its j files uncounted
                "echo $i > %s; echo \"labctl-count $i dirs $d\"; %s"
                % (n, n, COUNT_FILE, COUNT_FILE, hold_script(sleep_s)))

    def total(self, run, s0):
        return s0["inodes_total"]

    def plan_limits(self, run, cap, floor, s0):
        if not s0["inodes_total"]:
            floor = 0  # no fixed inode count (btrfs): nothing to run out of
        return cap, floor

    def extra_floors(self, run, s0):
        # creating files also takes a little disk space: the disk check's floor
        agent = run.agent
        return {"free_bytes": Disk.cap_and_floor(agent.mode, agent.limit_overrides,
                                                 s0["free_bytes"], s0["size_bytes"])[1]}

    def progress(self, run):
        return run.box.count()

    def progress_metrics(self, run, parsed, live):
        m, log = run.m, run.log
        files, src = parsed["count"], "script"
        if files is None:
            files, src = live.get("count_live"), "live-count"
        if files is None and log.peak is not None:
            files, src = log.peak, "live-count"
        if files is None:  # killed before its first report: what the host lost
            b0 = log.first("free_inodes")
            low = log.min("free_inodes")
            files = max(0, b0 - low) if (b0 is not None and low is not None) else None
            src = "host-inodes"
        m["files_created"], m["files_created_source"] = files, src
        if parsed["dirs"] is not None:
            m["dirs_created"] = parsed["dirs"] + 1
        elif files is not None:
            m["dirs_created"] = (files + 999) // 1000 + 1
        else:
            m["dirs_created"] = None

    def exhausted(self, run, s0):
        # out of inodes, or out of the blocks new directory entries need
        low_bytes = run.log.min("free_bytes_root")
        return (s0["inodes_total"] and (run.log.min("free_inodes") or 0) < 16) or \
            (low_bytes is not None and low_bytes < MIB)

    def used(self, m):
        return (m.get("files_created") or 0) + (m.get("dirs_created") or 0)

    def more_host_metrics(self, run):
        run.m["host_free_bytes_min"] = run.log.min("free_bytes")

    def verdict_text(self, m, reason, stopped, where):
        got = fmt_count(m.get("files_created"))
        if not m.get("host_inodes_total"):
            return ("%s after %s files: the host's %s has no fixed inode count, so inodes "
                    "cannot run out there (the files used disk space instead); %s"
                    % (stopped, got, where, host_effect(m, ("host_write", "host_create"))))
        ratio = m.get("landed_on_host_ratio")
        effect = host_effect(m, ("host_create", "host_write"))
        if ratio is not None and ratio >= 0.8:
            landed = ("every file created used an inode of the host's %s (free inodes fell by "
                      "%s, ratio %s)" % (where, fmt_count(m.get("host_free_inodes_delta")),
                                         ratio_text(ratio)))
            follows = "a container can exhaust the host's inodes"
        else:
            landed = ("the files did not show up as used inodes on the host's %s (ratio %s)"
                      % (where, ratio_text(ratio)))
            follows = "the container's inodes are separate from the host's"
            own = own_fs_words(m)
            if own:
                landed += "; %s" % own
        if reason == "enospc":
            return "%s after %s files: %s, and %s: %s" % (stopped, got, landed, effect, follows)
        return ("%s%s: %s; %s; no container limit applied: %s"
                % (stopped, " files" if reason == "cap" else " after %s files" % got, landed,
                   effect, follows))
