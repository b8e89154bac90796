# A FUSE file system of one program, `prog` (the bytes of the file given), that stops answering
# opens and lookups of it while the flag file exists: a server an attacker runs to stall
# whoever touches the file. Usage: fuse_hang.py MOUNT PROGRAM FLAG (runs in the foreground).
import errno, os, stat, sys, time

from fusepy import FUSE, FuseOSError, Operations

mount, program, flag = sys.argv[1:4]
data = open(program, "rb").read()


def hold():
    while os.path.exists(flag):
        time.sleep(0.05)


class Hang(Operations):
    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        if path == "/prog":
            hold()
            return dict(st_mode=stat.S_IFREG | 0o755, st_nlink=1, st_size=len(data))
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "prog"]

    def open(self, path, flags):
        hold()
        return 0

    def read(self, path, size, offset, fh):
        return data[offset : offset + size]


FUSE(Hang(), mount, foreground=True, nothreads=False)
