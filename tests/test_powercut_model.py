#!/usr/bin/env python3
# test_powercut_model.py — the disk model of tests/powercut.py on made-up recordings: what a power loss keeps of writes, syncs, creates, renames and unlinks.
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import powercut as pc  # noqa: E402


def op(seq, kind, path, off=0, length=0, body=b"", path2=""):
    return (seq, kind, path, path2, off, length, body)


def write(seq, path, off, body):
    return op(seq, pc.WRITE, path, off, len(body), body)


def fsync(seq, path, covers):
    return op(seq, pc.FSYNC, path, 1, covers)


def dirsync(seq, covers, path="."):
    return op(seq, pc.DIRSYNC, path, 1, covers)


class DiskModel(unittest.TestCase):
    def test_a_synced_write_in_a_synced_name_survives(self):
        ops = [op(1, pc.OPEN_CREATE, "a"), dirsync(2, 1), write(3, "a", 0, b"x" * 10),
               fsync(4, "a", 3), write(5, "a", 10, b"y")]
        self.assertEqual(pc.disk_at(ops, 6, 0, 1), {"a": b"x" * 10})
        self.assertEqual(pc.disk_at(ops, 6, 1, 1), {"a": b"x" * 10 + b"y"})

    def test_a_sync_covers_only_what_was_written_before_it_began(self):
        ops = [op(1, pc.OPEN_CREATE, "a"), dirsync(2, 1), write(3, "a", 0, b"x"),
               write(4, "a", 1, b"y"), fsync(5, "a", 3)]
        self.assertEqual(pc.disk_at(ops, 6, 0, 1), {"a": b"x"})

    def test_the_cut_keeps_only_what_came_before_it(self):
        ops = [op(1, pc.OPEN_CREATE, "a"), dirsync(2, 1), write(3, "a", 0, b"x"),
               fsync(4, "a", 3)]
        self.assertEqual(pc.disk_at(ops, 4, 0, 1), {"a": b""})
        self.assertEqual(pc.disk_at(ops, 4, 1, 1), {"a": b"x"})

    def test_a_created_file_whose_directory_was_not_synced_is_gone(self):
        ops = [op(1, pc.OPEN_CREATE, "a"), write(2, "a", 0, b"x"), fsync(3, "a", 2)]
        self.assertEqual(pc.disk_at(ops, 4, 0, 1), {})
        self.assertEqual(pc.disk_at(ops, 4, 1, 1), {"a": b"x"})
        # a directory sync begun before the create does not cover it
        self.assertEqual(pc.disk_at(ops + [dirsync(4, 0)], 5, 0, 1), {})
        self.assertEqual(pc.disk_at(ops + [dirsync(4, 3)], 5, 0, 1), {"a": b"x"})

    def test_an_unlink_or_rename_lasts_once_its_directory_is_synced(self):
        base = [op(1, pc.OPEN_CREATE, "a"), write(2, "a", 0, b"old"), fsync(3, "a", 2),
                dirsync(4, 3)]
        gone = base + [op(5, pc.UNLINK, "a")]
        self.assertEqual(pc.disk_at(gone, 6, 0, 1), {"a": b"old"})
        self.assertEqual(pc.disk_at(gone + [dirsync(6, 5)], 7, 0, 1), {})
        moved = base + [op(5, pc.RENAME, "a", path2="b")]
        self.assertEqual(pc.disk_at(moved, 6, 0, 1), {"a": b"old"})
        self.assertEqual(pc.disk_at(moved, 6, 1, 1), {"b": b"old"})
        self.assertEqual(pc.disk_at(moved + [dirsync(6, 5)], 7, 0, 1), {"b": b"old"})

    def test_a_rename_lasts_or_not_as_a_whole(self):
        ops = [op(1, pc.OPEN_CREATE, "a"), write(2, "a", 0, b"old"), fsync(3, "a", 2),
               dirsync(4, 3), op(5, pc.OPEN_CREATE, "c"), op(6, pc.RENAME, "a", path2="b"),
               op(7, pc.UNLINK, "c")]
        seen = set()
        for seed in range(40):
            disk = pc.disk_at(ops, 8, 2, seed)
            self.assertIn({k: v for k, v in disk.items() if k != "c"},
                          ({"a": b"old"}, {"b": b"old"}))
            seen.add(tuple(sorted(disk)))
        self.assertIn(("a",), seen)
        self.assertIn(("b",), seen)
        swapped = [op(1, pc.OPEN_CREATE, "x"), write(2, "x", 0, b"X"), fsync(3, "x", 2),
                   op(4, pc.OPEN_CREATE, "y"), write(5, "y", 0, b"Y"), fsync(6, "y", 5),
                   dirsync(7, 6), op(8, pc.RENAME, "x", 2, path2="y")]
        self.assertEqual(pc.disk_at(swapped, 9, 0, 1), {"x": b"X", "y": b"Y"})
        self.assertEqual(pc.disk_at(swapped, 9, 1, 1), {"x": b"Y", "y": b"X"})

    def test_a_recreated_name_is_a_new_file(self):
        ops = [op(1, pc.OPEN_CREATE, "w"), dirsync(2, 1), write(3, "w", 0, b"first"),
               fsync(4, "w", 3), op(5, pc.UNLINK, "w"), op(6, pc.OPEN_CREATE, "w"),
               write(7, "w", 0, b"2"), fsync(8, "w", 7)]
        # the unlink and the create were never made durable: the old file
        self.assertEqual(pc.disk_at(ops, 9, 0, 1), {"w": b"first"})
        self.assertEqual(pc.disk_at(ops + [dirsync(9, 8)], 10, 0, 1), {"w": b"2"})

    def test_a_truncate_is_a_write_like_any_other(self):
        ops = [op(1, pc.OPEN_CREATE, "a"), dirsync(2, 1), write(3, "a", 0, b"abcdef"),
               fsync(4, "a", 3), op(5, pc.TRUNCATE, "a", 2)]
        self.assertEqual(pc.disk_at(ops, 6, 0, 1), {"a": b"abcdef"})
        self.assertEqual(pc.disk_at(ops, 6, 1, 1), {"a": b"ab"})
        self.assertEqual(pc.disk_at(ops + [fsync(6, "a", 5)], 7, 0, 1), {"a": b"ab"})

    def test_a_subset_keeps_some_unsynced_writes_some_torn_and_is_seeded(self):
        body = bytes(range(256)) * 8  # 2048 bytes: four sectors
        ops = [op(1, pc.OPEN_CREATE, "a"), dirsync(2, 1)]
        ops += [write(3 + i, "a", i * len(body), body) for i in range(40)]
        seen = set()
        for seed in range(20):
            disk = pc.disk_at(ops, 100, 2, seed)
            self.assertEqual(disk, pc.disk_at(ops, 100, 2, seed))  # replayable
            data = disk["a"]
            seen.add(len(data))
            # what is there is what was written, or zeros where a later
            # write's hole was filled before an earlier one landed
            for at in range(0, len(data), pc.SECTOR):
                sector = data[at:at + pc.SECTOR]
                expect = body[at % len(body):at % len(body) + len(sector)]
                self.assertIn(sector, (expect, bytes(len(sector))))
        self.assertGreater(len(seen), 5)
        self.assertTrue(any(n % len(body) for n in seen), "no write was ever torn")


if __name__ == "__main__":
    unittest.main()
