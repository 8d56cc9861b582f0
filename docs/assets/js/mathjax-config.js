// MathJax 3, served from this site (assets/vendor/mathjax, copied from the npm package by tools/hooks.py).
// One configuration for every page: Markdown pages (pymdownx.arithmatex emits \( \) and \[ \]) and
// lesson pages (notebook cells keep the $ and $$ that the lessons are written with).
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams",
  },
  options: {
    // code, pre and scripts are never typeset; neither are the hidden copies of notebook cells the copy buttons read
    ignoreHtmlClass: "tex2jax_ignore|clipboard-copy-txt",
    processHtmlClass: "tex2jax_process|arithmatex",
  },
  chtml: {
    // the fonts sit next to the script; say so explicitly rather than rely on script detection
    fontURL: (document.currentScript ? new URL("../vendor/mathjax/output/chtml/fonts/woff-v2", document.currentScript.src).href : undefined),
  },
};
