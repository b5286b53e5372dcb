(function(){
  function inFrame(){try{return window.top!==window&&window.top.location.origin===location.origin}catch(e){return false}}
  document.addEventListener('click',function(ev){
    var a=ev.target.closest('a[data-airflow]');
    if(a&&inFrame()){ev.preventDefault();window.top.history.pushState({},'',a.getAttribute('href'));
      window.top.dispatchEvent(new PopStateEvent('popstate',{state:{}}));return}
    var x=ev.target.closest('a[data-external]');
    if(x&&inFrame()){ev.preventDefault();window.top.open(x.href,'_blank','noopener')}
  });
  document.querySelectorAll('button[data-replay]').forEach(function(btn){
    btn.addEventListener('click',function(){
      var out=btn.parentNode.querySelector('.replay-status');
      btn.disabled=true;out.textContent='creating the run...';
      fetch(btn.dataset.endpoint,{method:'POST',credentials:'same-origin',
        headers:{'Content-Type':'application/json'},body:JSON.stringify({day:btn.dataset.replay})})
      .then(function(r){return r.json().then(function(b){return {status:r.status,body:b}})})
      .then(function(res){
        var b=res.body||{};
        if(res.status<300||res.status===409){
          out.innerHTML='';var link=document.createElement('a');link.href=b.run_url;link.dataset.airflow='1';
          link.textContent=b.dag_run_id;link.className='replay-run';
          out.append(res.status===409?'already replayed: run ':'created run ',link,
            ' ('+(b.state||'queued')+')');
        }else{btn.disabled=false;out.textContent='refused: '+(b.detail||res.status)}
      }).catch(function(e){btn.disabled=false;out.textContent='error: '+e});
    });
  });
})();
