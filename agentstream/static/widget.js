/* agentstream chat widget for a business's own site:
   <script src="https://GATEWAY/widget.js" data-business="BUSINESS_ID" async></script>
   The chat runs in a frame served by the gateway (the business's allowed origins may embed it). */
(function () {
  var me = document.currentScript;
  if (!me) return;
  var business = me.getAttribute("data-business");
  if (!business) { console.error("agentstream widget: data-business is missing"); return; }
  var frame = document.createElement("iframe");
  frame.src = new URL(me.src).origin + "/?business=" + encodeURIComponent(business);
  frame.title = "Chat";
  frame.setAttribute("data-agentstream-widget", business);
  frame.style.cssText = "position:fixed;bottom:16px;right:16px;width:360px;height:520px;max-width:calc(100vw - 32px);" +
    "max-height:calc(100vh - 32px);border:0;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.2);z-index:2147483647;background:#fff";
  function mount() { document.body.appendChild(frame); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
