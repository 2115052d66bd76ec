// Reads a zip archive with java.util.zip and prints one line per entry:
//     base64(UTF-8 name) <TAB> size <TAB> sha256hex
// Usage: java tests/support/ZipCheck.java (zipfile|stream) archive.zip [member...]
//   zipfile: java.util.zip.ZipFile (central directory, random access)
//   stream:  java.util.zip.ZipInputStream (local headers only, as jar/servlet code streams)
// With members named, only those are hashed (the others print "-" for the hash): zipfile
// mode then reads no other entry's data (a listing), stream mode still reads every byte
// (it must, to find the next header) and checks every CRC.
// Any exception (bad CRC, bad sizes, unsupported layout...) prints a message to
// stderr and exits 2, so the caller can show why Java rejected the archive.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.Set;
import java.util.zip.*;

public class ZipCheck {
    private static final byte[] BUF = new byte[1 << 16];

    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: ZipCheck (zipfile|stream) archive.zip [member...]");
            System.exit(64);
        }
        Set<String> members = args.length > 2 ? Set.of(java.util.Arrays.copyOfRange(args, 2, args.length)) : null;
        PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16),
            false, StandardCharsets.UTF_8);
        try {
            switch (args[0]) {
                case "zipfile" -> readZipFile(args[1], members, out);
                case "stream" -> readStream(args[1], members, out);
                default -> throw new IllegalArgumentException("unknown mode " + args[0]);
            }
            out.flush();
        } catch (Throwable t) {
            out.flush();
            System.err.println("ZipCheck " + args[0] + " failed: " + t);
            t.printStackTrace();
            System.exit(2);
        }
    }

    static void readZipFile(String path, Set<String> members, PrintStream out) throws Exception {
        try (ZipFile zf = new ZipFile(path)) {
            Enumeration<? extends ZipEntry> entries = zf.entries();
            while (entries.hasMoreElements()) {
                ZipEntry e = entries.nextElement();
                if (members != null && !members.contains(e.getName())) {
                    print(out, e, new Digest(e.getSize(), e.getCrc(), "-"));
                    continue;
                }
                try (InputStream in = zf.getInputStream(e)) {
                    // ZipFile, unlike ZipInputStream, never verifies CRC or size: do it here.
                    Digest d = digest(in, true);
                    if (d.size != e.getSize())
                        throw new ZipException(e.getName() + ": size " + d.size + " != central size " + e.getSize());
                    if (d.crc != e.getCrc())
                        throw new ZipException(e.getName() + ": invalid entry CRC (expected 0x"
                            + Long.toHexString(e.getCrc()) + " but got 0x" + Long.toHexString(d.crc) + ")");
                    print(out, e, d);
                }
            }
        }
    }

    static void readStream(String path, Set<String> members, PrintStream out) throws Exception {
        try (ZipInputStream zin = new ZipInputStream(new BufferedInputStream(new FileInputStream(path), 1 << 16))) {
            ZipEntry e;
            // getNextEntry/read throw ZipException on CRC or size mismatches.
            while ((e = zin.getNextEntry()) != null) {
                print(out, e, digest(zin, members == null || members.contains(e.getName())));
            }
        }
    }

    record Digest(long size, long crc, String sha256) {}

    static Digest digest(InputStream in, boolean hash) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        CRC32 crc = new CRC32();
        long size = 0;
        int n;
        while ((n = in.read(BUF)) > 0) {
            if (hash) sha.update(BUF, 0, n);
            crc.update(BUF, 0, n);
            size += n;
        }
        return new Digest(size, crc.getValue(), hash ? HexFormat.of().formatHex(sha.digest()) : "-");
    }

    static void print(PrintStream out, ZipEntry e, Digest d) {
        String name = Base64.getEncoder().encodeToString(e.getName().getBytes(StandardCharsets.UTF_8));
        out.print(name + "\t" + d.size + "\t" + d.sha256 + "\n");
    }
}
