/**
 * The report's figures as PNG files for papers: resvg (Rust, shipped prebuilt inside the npm package) renders the
 * standalone SVG at twice its size. It is loaded on first use, so that the rest of the CLI never depends on its
 * native binary. Text needs a font: the system's fonts are loaded (DejaVu Sans preferred); on a machine without
 * any, the PNGs come out without their text and the report says so.
 */
import fs from "node:fs";
import { UserError } from "../../util/errors.ts";
import { FONT, standalone } from "./svg.ts";

const FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts", "C:\\Windows\\Fonts"];

/** Whether any font folder exists (a hint only: resvg finds fonts itself). */
export function systemFontsLikely(): boolean {
  return FONT_DIRS.some((d) => fs.existsSync(d));
}

export type PngRenderer = (svg: string) => Buffer;

/** A renderer of inline SVG charts to PNG at `scale` times their size. */
export async function pngRenderer(scale = 2): Promise<PngRenderer> {
  let resvg: typeof import("@resvg/resvg-js");
  try {
    resvg = await import("@resvg/resvg-js");
  } catch (e) {
    throw new UserError(
      "E_NO_RENDERER",
      `cannot load @resvg/resvg-js to write PNGs: ${(e as Error).message.split("\n")[0]}`,
      "reinstall with npm install, or pass --no-png",
    );
  }
  return (svg) =>
    new resvg.Resvg(standalone(svg), {
      fitTo: { mode: "zoom", value: scale },
      background: "#ffffff",
      font: { loadSystemFonts: true, defaultFontFamily: FONT.split(",")[0].trim() },
    })
      .render()
      .asPng();
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
