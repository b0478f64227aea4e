#!/usr/bin/python3
"""Writes test images and the pixels Pillow gives for them (tests/test_decode.cpp).

    /usr/bin/python3 tests/pil_decode_ref.py OUTDIR

For every case OUTDIR gets the image file NAME, NAME.rgb and NAME.l: the raw bytes of
    t = ImageOps.exif_transpose(Image.open(NAME)); t.convert("RGB"), t.convert("L")
which is what transformers' load_image does (plus "L" for grey models), and a line
"NAME WIDTH HEIGHT" in OUTDIR/manifest.txt (the size after exif_transpose).

Images come from Pillow's own encoders where Pillow can write the variant, and otherwise from
the small PNG / BMP / PNM writers below (16-bit and 2/4-bit PNG, Adam7, BMP bitfields, plain PNM,
metadata placements Pillow does not write). Exit status 77 when Pillow is missing.
"""
import io
import os
import random
import struct
import sys
import warnings
import zlib

try:
    from PIL import Image, ImageOps, PngImagePlugin
except ImportError:
    print("PIL not available for", sys.executable)
    sys.exit(77)


def smooth_rgb(w, h, seed):
    """Smooth random colours with some fine detail (JPEG-friendly, deterministic)."""
    r = random.Random(seed)
    sw, sh = max(2, w // 8), max(2, h // 8)
    base = Image.frombytes("RGB", (sw, sh), r.randbytes(sw * sh * 3)).resize((w, h), Image.BICUBIC)
    noise = Image.frombytes("RGB", (w, h), r.randbytes(w * h * 3))
    return Image.blend(base, noise, 0.12)


def sample(x, y, c, maxv, seed=0):
    """Deterministic noisy sample in 0..maxv for the lossless writers."""
    v = ((x * 73856093) ^ (y * 19349663) ^ ((c + 1) * 83492791) ^ (seed * 2654435761)) & 0xFFFFFFFF
    v = (v * 2246822519 + 3266489917) & 0xFFFFFFFF
    return (v >> 7) % (maxv + 1)


# ---- EXIF -------------------------------------------------------------------------------------

def make_exif(entries, big_endian=False, prefix=True, extra=b""):
    """A TIFF blob with one IFD of (tag, type, count, value_bytes) entries."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    n = len(entries)
    data_off = 8 + 2 + 12 * n + 4
    ifd, blob = struct.pack(e + "H", n), b""
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack(e + "HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack(e + "HHII", tag, typ, count, data_off + len(blob))
            blob += value
    out = head + ifd + struct.pack(e + "I", 0) + blob + extra
    return (b"Exif\x00\x00" + out) if prefix else out


def exif_orient(o, big_endian=False, prefix=True):
    e = ">" if big_endian else "<"
    return make_exif([(0x010F, 2, 6, b"Maker\0"), (0x0112, 3, 1, struct.pack(e + "H", o))], big_endian, prefix)


# ---- PNG writer ---------------------------------------------------------------------------------

def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_rows(rows, bpp):
    out, prior = bytearray(), bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        ft = i % 5
        f = bytearray()
        for j, x in enumerate(row):
            a = row[j - bpp] if j >= bpp else 0
            b = prior[j]
            c = prior[j - bpp] if j >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ft]
            f.append((x - pred) & 255)
        out += bytes([ft]) + f
        prior = row
    return bytes(out)


def _pack_row(samples, bd):
    if bd == 8:
        return bytes(samples)
    if bd == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, nbits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << bd) | s
        nbits += bd
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


def write_png(path, px, w, h, bd, ct, interlace=False, plte=None, trns=None, before=(), after=()):
    """px(x, y) -> tuple of samples. before/after: extra (type, data) chunks around IDAT."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ct]
    bpp = max(1, channels * bd // 8)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] \
        if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        xs, ys = list(range(x0, w, dx)), list(range(y0, h, dy))
        if not xs or not ys:
            continue
        rows = [_pack_row([s for x in xs for s in px(x, y)], bd) for y in ys]
        raw += _filter_rows(rows, bpp)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bd, ct, 0, 0, 1 if interlace else 0))
    for t, d in before:
        out += png_chunk(t, d)
    if plte is not None:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    z = zlib.compress(raw, 9)
    out += png_chunk(b"IDAT", z[: len(z) // 2]) + png_chunk(b"IDAT", z[len(z) // 2:])
    for t, d in after:
        out += png_chunk(t, d)
    out += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


# ---- BMP writer ---------------------------------------------------------------------------------

def write_bmp(path, w, h, bits, row_bytes, palette=b"", top_down=False, header=40, compression=0,
              masks=None, colors=0):
    """row_bytes(y) -> the pixel bytes of image row y (top row is y = 0), without padding."""
    stride = ((w * bits + 31) >> 3) & ~3
    rows = [row_bytes(y).ljust(stride, b"\0") for y in range(h)]
    if not top_down:
        rows.reverse()
    pixels = b"".join(rows)
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", header, w, -h if top_down else h, 1, bits, compression,
                           len(pixels), 2835, 2835, colors, 0)
        if header >= 52 and masks:
            info += struct.pack("<IIII", *masks)
        info = info.ljust(header, b"\0")
        if header == 40 and masks:
            info += struct.pack("<III", *masks[:3])
    offset = 14 + len(info) + len(palette)
    with open(path, "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels)


# ---- cases --------------------------------------------------------------------------------------

def main(out):
    warnings.simplefilter("ignore")  # Pillow warns about some of the odd EXIF / palette cases
    os.makedirs(out, exist_ok=True)
    manifest = []

    def ref(name):
        path = os.path.join(out, name)
        with Image.open(path) as im:
            t = ImageOps.exif_transpose(im)
            rgb, grey = t.convert("RGB"), t.convert("L")
        with open(path + ".rgb", "wb") as f:
            f.write(rgb.tobytes())
        with open(path + ".l", "wb") as f:
            f.write(grey.tobytes())
        manifest.append(f"{name} {rgb.width} {rgb.height}")

    def save(name, im, **kw):
        im.save(os.path.join(out, name), **kw)
        ref(name)

    P = lambda name: os.path.join(out, name)  # noqa: E731

    # JPEG ---------------------------------------------------------------------------------------
    rgb = smooth_rgb(67, 45, 1)
    save("jpeg_420_q90.jpg", rgb, quality=90, subsampling="4:2:0")
    save("jpeg_444_q90.jpg", rgb, quality=90, subsampling="4:4:4")
    save("jpeg_422_q75.jpg", rgb, quality=75, subsampling="4:2:2")
    save("jpeg_grey.jpg", rgb.convert("L"), quality=85)
    save("jpeg_progressive.jpg", rgb, quality=90, progressive=True)
    save("jpeg_progressive_grey.jpg", rgb.convert("L"), quality=90, progressive=True)
    save("jpeg_optimized_q30.jpg", smooth_rgb(129, 97, 2), quality=30, optimize=True)
    save("jpeg_1x1.jpg", smooth_rgb(1, 1, 3), quality=90)
    save("jpeg_big_420.jpg", smooth_rgb(640, 481, 4), quality=90)
    cmyk = rgb.convert("CMYK")
    save("jpeg_cmyk_adobe.jpg", cmyk, quality=90)  # Pillow writes Adobe (inverted) CMYK
    # The same CMYK data without the Adobe APP14 segment (plain, non-inverted convention: Pillow
    # still inverts), and with the Adobe transform set to 2 (libjpeg then decodes it as YCCK).
    data = open(P("jpeg_cmyk_adobe.jpg"), "rb").read()
    i = data.find(b"\xff\xee")
    assert data[i + 4:i + 9] == b"Adobe", "Pillow's CMYK JPEG has no Adobe segment"
    seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
    with open(P("jpeg_cmyk_plain.jpg"), "wb") as f:
        f.write(data[:i] + data[i + 2 + seg_len:])
    ref("jpeg_cmyk_plain.jpg")
    ycck = bytearray(data)
    ycck[i + 4 + 11] = 2  # APP14 payload: "Adobe", version(2), flags0(2), flags1(2), transform(1)
    with open(P("jpeg_ycck.jpg"), "wb") as f:
        f.write(bytes(ycck))
    ref("jpeg_ycck.jpg")
    # An RGB JPEG with an Adobe segment saying transform 0: libjpeg treats the planes as RGB.
    data = open(P("jpeg_444_q90.jpg"), "rb").read()
    adobe = b"\xff\xee" + struct.pack(">H", 14) + b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0)
    with open(P("jpeg_adobe_rgb.jpg"), "wb") as f:
        f.write(data[:2] + adobe + data[2:])
    ref("jpeg_adobe_rgb.jpg")
    # EXIF orientation 1..8, both byte orders, odd tag types.
    orient_src = smooth_rgb(31, 17, 5)
    for o in range(1, 9):
        save(f"jpeg_exif_{o}.jpg", orient_src, quality=92, exif=exif_orient(o))
    save("jpeg_exif_be_6.jpg", orient_src, quality=92, exif=exif_orient(6, big_endian=True))
    save("jpeg_exif_long_8.jpg", orient_src, quality=92, exif=make_exif([(0x0112, 4, 1, struct.pack("<I", 8))]))
    save("jpeg_exif_rational_6.jpg", orient_src, quality=92,
         exif=make_exif([(0x0112, 5, 1, struct.pack("<II", 12, 2))]))
    save("jpeg_exif_byte_6.jpg", orient_src, quality=92, exif=make_exif([(0x0112, 1, 1, b"\x06")]))
    save("jpeg_exif_count2_3.jpg", orient_src, quality=92, exif=make_exif([(0x0112, 3, 2, struct.pack("<HH", 3, 6))]))
    save("jpeg_exif_dup_5.jpg", orient_src, quality=92,
         exif=make_exif([(0x0112, 3, 1, struct.pack("<H", 2)), (0x0112, 3, 1, struct.pack("<H", 5))]))
    # An entry whose data lies outside the blob ends the directory: the orientation after it is lost.
    save("jpeg_exif_cut_after.jpg", orient_src, quality=92,
         exif=make_exif([(0x010F, 2, 600, b"x" * 600), (0x0112, 3, 1, struct.pack("<H", 6))])[:-500])
    save("jpeg_exif_garbage.jpg", orient_src, quality=92, exif=b"Exif\x00\x00garbage, not TIFF")
    save("jpeg_exif_9.jpg", orient_src, quality=92, exif=exif_orient(9))
    # An XMP APP1 before the EXIF one (Pillow takes the first APP1 that starts with "Exif\0"), and
    # XMP alone, which Pillow 9.4 does not consult for JPEG (only PNG's XML:com.adobe.xmp).
    xmp = b"http://ns.adobe.com/xap/1.0/\0" + b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    xmp_seg = b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp
    data = open(P("jpeg_exif_3.jpg"), "rb").read()
    with open(P("jpeg_xmp_then_exif_3.jpg"), "wb") as f:
        f.write(data[:2] + xmp_seg + data[2:])
    ref("jpeg_xmp_then_exif_3.jpg")
    data = open(P("jpeg_exif_1.jpg"), "rb").read()
    with open(P("jpeg_xmp_only.jpg"), "wb") as f:
        f.write(data[:2] + xmp_seg + data[2:])
    ref("jpeg_xmp_only.jpg")

    # PNG from Pillow ----------------------------------------------------------------------------
    src = smooth_rgb(37, 23, 6)
    save("png_rgb.png", src)
    rgba = src.copy()
    rgba.putalpha(src.convert("L"))
    save("png_rgba.png", rgba)
    save("png_l.png", src.convert("L"))
    save("png_la.png", rgba.convert("LA"))
    save("png_1.png", src.convert("1"))
    pal = src.quantize(200)
    save("png_p8.png", pal)
    save("png_p_trns_index.png", pal, transparency=3)
    pa = rgba.quantize(50)
    save("png_p_trns_bytes.png", pa, transparency=bytes(range(0, 250, 5)))
    save("png_p4_bits.png", src.quantize(16), bits=4)
    ii = Image.new("I", (37, 23))
    ii.putdata([sample(x, y, 0, 700) for y in range(23) for x in range(37)])
    save("png_i16_pillow.png", ii)
    save("png_exif_6_pillow.png", src, exif=exif_orient(6))
    save("png_apng.png", src, save_all=True, append_images=[smooth_rgb(37, 23, 12), rgba], duration=50)

    # PNG from the writer above: every bit depth / colour type, Adam7, odd palettes, metadata.
    w, h = 37, 23
    for bd in (1, 2, 4, 8, 16):
        write_png(P(f"png_grey{bd}.png"), lambda x, y, bd=bd: (sample(x, y, 0, (1 << bd) - 1),), w, h, bd, 0)
        ref(f"png_grey{bd}.png")
    lowgrey = lambda x, y: (sample(x, y, 0, 600),)  # noqa: E731  16-bit values around the 255 clip
    write_png(P("png_grey16_low.png"), lowgrey, w, h, 16, 0)
    ref("png_grey16_low.png")
    for bd in (8, 16):
        m = (1 << bd) - 1
        write_png(P(f"png_ga{bd}.png"), lambda x, y, m=m: (sample(x, y, 0, m), sample(x, y, 1, m)), w, h, bd, 4)
        write_png(P(f"png_rgb{bd}.png"), lambda x, y, m=m: tuple(sample(x, y, c, m) for c in range(3)), w, h, bd, 2)
        write_png(P(f"png_rgba{bd}.png"), lambda x, y, m=m: tuple(sample(x, y, c, m) for c in range(4)), w, h, bd, 6)
        for n in ("ga", "rgb", "rgba"):
            ref(f"png_{n}{bd}.png")
    plte = bytes(sample(i, 0, c, 255, 9) for i in range(256) for c in range(3))
    for bd in (1, 2, 4, 8):
        write_png(P(f"png_pal{bd}.png"), lambda x, y, bd=bd: (sample(x, y, 0, (1 << bd) - 1),), w, h, bd, 3,
                  plte=plte[: 3 * (1 << bd)])
        ref(f"png_pal{bd}.png")
    # Indices past a 10-entry PLTE: Pillow's palette is a grey ramp there.
    write_png(P("png_pal_short.png"), lambda x, y: (sample(x, y, 0, 40),), w, h, 8, 3, plte=plte[:30])
    ref("png_pal_short.png")
    write_png(P("png_pal_trns.png"), lambda x, y: (sample(x, y, 0, 255),), w, h, 8, 3, plte=plte,
              trns=bytes(range(0, 256, 2)))
    ref("png_pal_trns.png")
    write_png(P("png_rgb_trns.png"), lambda x, y: tuple(sample(x, y, c, 255) for c in range(3)), w, h, 8, 2,
              trns=struct.pack(">HHH", 1, 2, 3))
    ref("png_rgb_trns.png")
    write_png(P("png_grey8_trns.png"), lambda x, y: (sample(x, y, 0, 255),), w, h, 8, 0, trns=struct.pack(">H", 7))
    write_png(P("png_rgb16_trns.png"), lambda x, y: tuple(sample(x, y, c, 65535) for c in range(3)), w, h, 16, 2,
              trns=struct.pack(">HHH", 1000, 2000, 3000))
    ref("png_grey8_trns.png")
    ref("png_rgb16_trns.png")
    # Adam7, including images smaller than the 8x8 pattern.
    write_png(P("png_adam7_rgb8.png"), lambda x, y: tuple(sample(x, y, c, 255) for c in range(3)), w, h, 8, 2, True)
    write_png(P("png_adam7_grey2.png"), lambda x, y: (sample(x, y, 0, 3),), w, h, 2, 0, True)
    write_png(P("png_adam7_grey16.png"), lowgrey, w, h, 16, 0, True)
    write_png(P("png_adam7_rgba16.png"), lambda x, y: tuple(sample(x, y, c, 65535) for c in range(4)), w, h, 16, 6,
              True)
    write_png(P("png_adam7_pal4.png"), lambda x, y: (sample(x, y, 0, 15),), w, h, 4, 3, True, plte=plte[:48])
    write_png(P("png_adam7_3x2.png"), lambda x, y: tuple(sample(x, y, c, 255) for c in range(3)), 3, 2, 8, 2, True)
    write_png(P("png_adam7_1x1.png"), lambda x, y: (sample(x, y, 0, 255), 77), 1, 1, 8, 4, True)
    for n in ("rgb8", "grey2", "grey16", "rgba16", "pal4", "3x2", "1x1"):
        ref(f"png_adam7_{n}.png")
    # Orientation metadata in all the places Pillow 9.4 looks.
    px = lambda x, y: tuple(sample(x, y, c, 255) for c in range(3))  # noqa: E731
    exif3 = exif_orient(3, prefix=False)
    cases = {
        "png_exif_after_idat_3": ([], [(b"eXIf", exif3)]),
        "png_exif_be_before_7": ([(b"eXIf", exif_orient(7, True, prefix=False))], []),
        "png_exif_before_2_after_7": ([(b"eXIf", exif_orient(2, prefix=False))], [(b"eXIf", exif_orient(7, prefix=False))]),
        "png_exif_after_4_then_5": ([], [(b"eXIf", exif_orient(4, prefix=False)), (b"eXIf", exif_orient(5, prefix=False))]),
        "png_text_exif_key_8": ([(b"tEXt", b"exif\0" + exif_orient(8))], []),
        "png_raw_profile_ztxt_6": ([(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(
            b"\nexif\n     %d\n" % len(exif_orient(6)) + b"\n".join(
                exif_orient(6).hex().encode()[i:i + 72] for i in range(0, len(exif_orient(6)) * 2, 72)) + b"\n"))], []),
        "png_xmp_itxt_8": ([(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(
            b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'))], []),
        "png_xmp_element_after_5": ([], [(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0"
                                          b"<x><tiff:Orientation>5</tiff:Orientation></x>")]),
        "png_exif_1_xmp_6": ([(b"eXIf", exif_orient(1, prefix=False)),
                              (b"tEXt", b'XML:com.adobe.xmp\0<a tiff:Orientation="6"/>')], []),
        "png_exif_no_tag_xmp_6": ([(b"eXIf", make_exif([(0x010F, 2, 6, b"Maker\0")], prefix=False)),
                                   (b"tEXt", b'XML:com.adobe.xmp\0<a tiff:Orientation="6"/>')], []),
    }
    for name, (before, after) in cases.items():
        write_png(P(name + ".png"), px, 31, 17, 8, 2, before=before, after=after)
        ref(name + ".png")

    # WebP ---------------------------------------------------------------------------------------
    wsrc = smooth_rgb(67, 45, 7)
    walpha = wsrc.copy()
    walpha.putalpha(wsrc.convert("L"))
    save("webp_lossy.webp", wsrc, quality=80)
    save("webp_lossy_alpha.webp", walpha, quality=80)
    save("webp_lossless.webp", wsrc, lossless=True)
    save("webp_lossless_alpha.webp", walpha, lossless=True)
    save("webp_exif_6.webp", wsrc, quality=80, exif=exif_orient(6))
    save("webp_exif_raw_tiff_8.webp", wsrc, lossless=True, exif=exif_orient(8, big_endian=True, prefix=False))
    frames = [smooth_rgb(40, 30, 8), smooth_rgb(40, 30, 9)]
    save("webp_animated.webp", frames[0], save_all=True, append_images=frames[1:], duration=100, lossless=True)

    # BMP ----------------------------------------------------------------------------------------
    bsrc = smooth_rgb(37, 23, 10)
    save("bmp_24.bmp", bsrc)
    save("bmp_32_pillow.bmp", rgba)
    save("bmp_8_pal.bmp", bsrc.quantize(100))
    save("bmp_8_grey.bmp", bsrc.convert("L"))
    save("bmp_1.bmp", bsrc.convert("1"))
    rgbrow = lambda y, order=(2, 1, 0): bytes(bsrc.getpixel((x, y))[c] for x in range(37) for c in order)  # noqa: E731
    write_bmp(P("bmp_24_topdown.bmp"), 37, 23, 24, rgbrow, top_down=True)
    write_bmp(P("bmp_32_topdown.bmp"), 37, 23, 32,
              lambda y: b"".join(bytes(bsrc.getpixel((x, y))[::-1]) + b"\x80" for x in range(37)), top_down=True)
    bgrx_pal = bytes(v for i in range(20) for v in (sample(i, 1, 2, 255), sample(i, 1, 1, 255), sample(i, 1, 0, 255), 0))
    write_bmp(P("bmp_8_short_palette.bmp"), 37, 23, 8, lambda y: bytes(sample(x, y, 0, 40) for x in range(37)),
              palette=bgrx_pal, colors=20)
    write_bmp(P("bmp_4_pal.bmp"), 37, 23, 4,
              lambda y: bytes((sample(2 * i, y, 0, 15) << 4) | sample(2 * i + 1, y, 0, 15) for i in range(19)),
              palette=bgrx_pal[:64], colors=16)
    p555 = lambda y: b"".join(struct.pack("<H", sample(x, y, 0, 0x7FFF)) for x in range(37))  # noqa: E731
    write_bmp(P("bmp_16_555.bmp"), 37, 23, 16, p555)
    write_bmp(P("bmp_16_565.bmp"), 37, 23, 16, lambda y: b"".join(struct.pack("<H", sample(x, y, 0, 0xFFFF))
                                                                for x in range(37)),
              compression=3, masks=(0xF800, 0x7E0, 0x1F, 0))
    four = lambda y: bytes(sample(x, y, c, 255) for x in range(37) for c in range(4))  # noqa: E731
    write_bmp(P("bmp_32_v5_bgra.bmp"), 37, 23, 32, four, header=124, compression=3,
              masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000))
    write_bmp(P("bmp_32_v4_rgba.bmp"), 37, 23, 32, four, header=108, compression=3,
              masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000))
    write_bmp(P("bmp_32_xbgr.bmp"), 37, 23, 32, four, compression=3, masks=(0xFF000000, 0xFF0000, 0xFF00, 0))
    write_bmp(P("bmp_os2_24.bmp"), 37, 23, 24, rgbrow, header=12)
    write_bmp(P("bmp_os2_8.bmp"), 37, 23, 8, lambda y: bytes(sample(x, y, 0, 255) for x in range(37)),
              palette=bytes(sample(i, 2, c, 255) for i in range(256) for c in range(3)), header=12)
    for n in ("24_topdown", "32_topdown", "8_short_palette", "4_pal", "16_555", "16_565", "32_v5_bgra",
              "32_v4_rgba", "32_xbgr", "os2_24", "os2_8"):
        ref(f"bmp_{n}.bmp")

    # PNM ----------------------------------------------------------------------------------------
    psrc = smooth_rgb(37, 23, 11)
    save("pnm_p6.ppm", psrc)
    save("pnm_p5.pgm", psrc.convert("L"))
    save("pnm_p4.pbm", psrc.convert("1"))
    save("pnm_p5_16bit.pgm", ii)

    def pnm(name, head, body):
        with open(P(name), "wb") as f:
            f.write(head + body)
        ref(name)

    vals = lambda m, n: [sample(i % 37, i // 37, 0, m) for i in range(n)]  # noqa: E731
    text = lambda v: b"\n".join(b" ".join(b"%d" % x for x in v[i:i + 12]) for i in range(0, len(v), 12))  # noqa: E731
    pnm("pnm_p6_comments.ppm", b"P6\n# a comment\n37 # width\n23\n255\n", psrc.tobytes())
    pnm("pnm_p2_plain.pgm", b"P2\n# plain grey\n37 23\n255\n", text(vals(255, 37 * 23)) + b"\n")
    pnm("pnm_p3_plain_max15.ppm", b"P3 37 23 15\n", b"# data\n" + text(vals(15, 37 * 23 * 3)))
    pnm("pnm_p1_plain.pbm", b"P1\n37 23\n", b"\n".join(bytes(48 + (sample(x, y, 0, 1)) for x in range(37))
                                                         for y in range(23)))
    pnm("pnm_p5_max100.pgm", b"P5 37 23 100\n", bytes(vals(100, 37 * 23)))
    pnm("pnm_p5_max1000.pgm", b"P5 37 23 1000\n", b"".join(struct.pack(">H", v) for v in vals(1000, 37 * 23)))
    pnm("pnm_p6_max1000.ppm", b"P6 37 23 1000\n", b"".join(struct.pack(">H", v) for v in vals(1000, 37 * 23 * 3)))
    pnm("pnm_p2_max1000.pgm", b"P2 37 23 1000\n", text(vals(1000, 37 * 23)))
    pnm("pnm_p5_max2.pgm", b"P5 37 23 2\n", bytes(vals(2, 37 * 23)))

    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")


def bench(path, runs=5):
    """Writes a 4000x3000 q90 4:2:0 JPEG of smooth random content (if missing) and prints the
    median time of Image.open(path).convert("RGB") (load included) over `runs` runs."""
    import time
    if not os.path.exists(path):
        smooth_rgb(4000, 3000, 42).save(path, quality=90, subsampling="4:2:0")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        with Image.open(path) as im:
            im.convert("RGB")
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"pillow {Image.__version__} open+convert('RGB') median of {runs}: {times[runs // 2] * 1000:.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bench":
        bench(sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
