#include "web_page.h"

namespace convnext::serve {

namespace {

// Model names are [A-Za-z0-9._-] (checked at start-up), so they go into the page as they are.
constexpr const char* kHead = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convnext serve</title>
<link rel="icon" href="data:,">
<style>
  body { font: 16px/1.4 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
  main { max-width: 720px; margin: 2rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 1rem; }
  select, button { font: inherit; }
  select { margin-left: .5rem; }
  #drop { border: 2px dashed #8a94a6; border-radius: 10px; background: #fff; padding: 1.25rem; text-align: center;
          cursor: pointer; }
  #drop.over { border-color: #2f6fed; background: #eef3ff; }
  #drop p { margin: 0 0 .75rem; }
  #drop small { color: #5a6478; }
  #choose { padding: .45rem 1rem; border: 0; border-radius: 6px; background: #2f6fed; color: #fff; cursor: pointer; }
  #choose:hover { background: #2459c4; }
  :focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
  #preview { display: none; margin: 1rem auto 0; height: 200px; max-width: 100%; object-fit: contain;
             border-radius: 6px; background: #f0f2f5; }
  #preview.small { image-rendering: pixelated; }
  #status { color: #5a6478; margin: 1rem 0 .5rem; min-height: 1.4em; overflow-wrap: anywhere; }
  #status.error { color: #b42318; }
  .row { display: grid; grid-template-columns: minmax(6rem, 12rem) 1fr 4rem; align-items: center; gap: .6rem;
         margin: .35rem 0; }
  .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { background: #e3e7ee; border-radius: 4px; height: 1.1rem; overflow: hidden; }
  .bar { background: #2f6fed; height: 100%; }
  .row:first-child .bar { background: #1a9e5a; }
  .score { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<main>
<h1>ConvNeXt image classification</h1>
<p><label>Model<select id="model">)";

constexpr const char* kTail = R"(</select></label></p>
<input id="file" type="file" hidden
       accept="image/jpeg,image/png,image/webp,image/bmp,.jpg,.jpeg,.png,.webp,.bmp,.pnm,.ppm,.pgm,.pbm">
<div id="drop">
  <p>Drop an image here, or <button id="choose" type="button">choose an image</button></p>
  <small>JPEG, PNG, WebP, BMP or PNM</small>
  <img id="preview" alt="">
</div>
<div id="status" role="status" aria-live="polite"></div>
<div id="results"></div>
</main>
<script>
const $ = id => document.getElementById(id);
const drop = $('drop'), file = $('file'), preview = $('preview'), statusLine = $('status'), results = $('results');
let current = 0;  // the latest request: an older answer that comes later is dropped

// A click anywhere on the drop zone opens the file chooser; the button gives it the keyboard
// (Enter and Space click a button). The input sits outside the zone, so its click does not come back.
drop.addEventListener('click', () => file.click());
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', e => { if (!drop.contains(e.relatedTarget)) drop.classList.remove('over'); });
drop.addEventListener('drop', e => {
  e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files.length) classify(e.dataTransfer.files[0]);
  else show('Drop an image file (not a link or text).', true);
});
file.addEventListener('change', () => {
  if (file.files.length) classify(file.files[0]);
  file.value = '';  // choosing the same file again classifies it again
});

function show(text, isError) { statusLine.textContent = text; statusLine.className = isError ? 'error' : ''; }

function row(p) {
  const score = Math.max(0, Math.min(1, Number(p.score)));
  const r = document.createElement('div'); r.className = 'row';
  const label = document.createElement('div'); label.className = 'label';
  label.textContent = label.title = p.label;
  const track = document.createElement('div'); track.className = 'track';
  track.setAttribute('role', 'meter'); track.setAttribute('aria-label', p.label);
  track.setAttribute('aria-valuemin', '0'); track.setAttribute('aria-valuemax', '1');
  track.setAttribute('aria-valuenow', String(score));
  const bar = document.createElement('div'); bar.className = 'bar';
  bar.style.width = (100 * score).toFixed(1) + '%';
  track.appendChild(bar);
  const s = document.createElement('div'); s.className = 'score'; s.textContent = Number(p.score).toFixed(3);
  r.append(label, track, s);
  return r;
}

async function classify(f) {
  const id = ++current;
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.onload = () => preview.classList.toggle('small', preview.naturalHeight < 100);
  preview.onerror = () => { preview.style.display = 'none'; };
  preview.src = URL.createObjectURL(f);
  preview.alt = f.name;
  preview.style.display = 'block';
  results.textContent = '';
  show('Classifying ' + f.name + ' …');
  const model = $('model').value;
  const t0 = performance.now();
  let r, text;
  try {
    r = await fetch('/models/' + encodeURIComponent(model), {
      method: 'POST', headers: {'Content-Type': f.type || 'application/octet-stream'}, body: f});
    text = await r.text();
  } catch (e) {
    if (id === current) show(f.name + ': the server did not answer (' + e.message + ')', true);
    return;
  }
  const ms = performance.now() - t0;
  if (id !== current) return;
  let body = null;
  try { body = JSON.parse(text); } catch (e) { /* an answer that is not JSON: shown as text below */ }
  if (!r.ok || !Array.isArray(body)) {
    const why = body && body.error ? String(body.error).replace(/^image 0: /, '') : (text.trim() || r.statusText);
    show(f.name + ': ' + why + ' (HTTP ' + r.status + ')', true);
    return;
  }
  show(f.name + ': ' + ms.toFixed(0) + ' ms on ' + model);
  for (const p of body) results.appendChild(row(p));
}
</script>
</body>
</html>
)";

}  // namespace

std::string web_page(const std::vector<std::string>& model_names) {
  std::string page = kHead;
  for (const std::string& n : model_names) page += "<option value=\"" + n + "\">" + n + "</option>";
  return page + kTail;
}

}  // namespace convnext::serve
